/**
 * Page selections: `1-3,7` picks pages 1, 2, 3 and 7 of every PDF in a request (1-based, as readers
 * number them). VTC_MAX_PAGES applies to the pages chosen, so a long document can be read a part at a
 * time. Images are single pages: a selection does not apply to them.
 */
import { InputError } from "../common/errors.ts";

/** Pages, 1-based, ascending, without repeats. */
export type PageSelection = readonly number[];

const MAX_PAGE = 100_000;

export function parsePageSelection(spec: string, field = "pages"): number[] {
  const bad = (why: string): never => {
    throw new InputError(`${field}: ${why} (e.g. "1-3,7": pages 1 to 3 and 7, counted from 1)`, {
      code: "bad_request",
      field,
    });
  };
  const pages = new Set<number>();
  const parts = spec.split(",").map((p) => p.trim());
  if (spec.trim() === "") bad("empty");
  for (const part of parts) {
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part);
    if (!m) bad(`"${part}" is not a page or a range`);
    const from = Number(m![1]);
    const to = m![2] === undefined ? from : Number(m![2]);
    if (from < 1) bad("pages are counted from 1");
    if (to < from) bad(`the range "${part}" runs backwards`);
    if (to > MAX_PAGE) bad(`page ${to} is past any document's end`);
    for (let p = from; p <= to; p++) pages.add(p);
  }
  return [...pages].sort((a, b) => a - b);
}

/** The pages of a `pageCount`-page PDF to use: the selection (checked against its end), or all. */
export function choosePages(
  selection: PageSelection | undefined,
  pageCount: number,
  field: string,
): number[] {
  if (!selection) return Array.from({ length: pageCount }, (_, i) => i + 1);
  const past = selection.find((p) => p > pageCount);
  if (past !== undefined) {
    throw new InputError(`pages: page ${past} is past the end of ${field}, which has ${pageCount} pages`, {
      code: "bad_request",
      field: "pages",
      limit: pageCount,
    });
  }
  return [...selection];
}
