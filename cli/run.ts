/** Placeholder until the subcommand lands; says so instead of pretending. */
export async function main(_argv: string[]): Promise<number> {
  process.stderr.write("vtc run: not implemented yet\n");
  return 2;
}
