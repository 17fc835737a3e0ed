/**
 * Bad input to a compressor: unknown method, budget out of range, bad option, missing or malformed
 * tensor, NaN/Inf. The API maps it to a 4xx and the CLI to exit code 2. `field` names the input
 * (e.g. "method", "budget.keep", "options.margin", "attention.22"); the message names the limit.
 */
export class CompressorInputError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message.startsWith(`${field}:`) ? message : `${field}: ${message}`);
    this.name = "CompressorInputError";
    this.field = field;
  }
}
