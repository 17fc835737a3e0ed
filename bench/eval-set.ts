/**
 * The embedded model's held-out set (models/vtc-tiny/eval): questions.jsonl, the PNGs it names and, from
 * vtc-tiny v2 on, background.json. Read by `npm run model:eval`, `npm run eval` and the TCGC calibration.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

export interface EvalQuestion {
  id: string;
  image: string;
  kind: "scene" | "doc";
  question: string;
  answer: string;
  type: string;
  /** The target's footprint: how many patches (page patches for a document) its pixels touch. */
  target_patches: number;
  /**
   * The generator's flag. Documents: footprint of 1..4 patches. Scenes keep v1's meaning (148 of the
   * v2 set's small scene questions have a larger footprint), so the reports use `isSmall` instead.
   */
  small: boolean;
  crop_grid: [number, number] | null;
  width: number;
  height: number;
  /** v2: the question's template (the question-only prior is the most common answer per template). */
  template?: string;
  /** v2: the footprint's page-patch indices. */
  target_ids?: number[];
}

/** The largest footprint of a "small" target, in patches (models/training/gen_v2.py SMALL_MAX). */
export const SMALL_MAX_PATCHES = 4;

/** A small target: its real footprint is 1..4 patches (issue 11), whatever the question's kind. */
export function isSmall(q: Pick<EvalQuestion, "target_patches">): boolean {
  return q.target_patches >= 1 && q.target_patches <= SMALL_MAX_PATCHES;
}

/** The question's template; v1 eval sets have none, where the type stands for it. */
export function templateOf(q: EvalQuestion): string {
  return q.template ?? q.type;
}

export function readEvalSet(modelDir: string): EvalQuestion[] {
  const file = path.join(modelDir, "eval", "questions.jsonl");
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as EvalQuestion);
}

/**
 * Per image name, per view (a scene: one; a document: crops row-major, then the global view), the patch
 * indices labelled background (eval/background.json, vtc-tiny v2). Undefined when the set has none (v1).
 */
export type BackgroundMap = Record<string, number[][]>;

export function readBackground(modelDir: string): BackgroundMap | undefined {
  const file = path.join(modelDir, "eval", "background.json");
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, "utf8")) as BackgroundMap;
}

/** The questions grouped by image; images in name order (the order evaluate_v2.py numbers them in). */
export function byImage(questions: EvalQuestion[]): {
  images: string[];
  questions: Map<string, EvalQuestion[]>;
} {
  const map = new Map<string, EvalQuestion[]>();
  for (const q of questions) {
    const list = map.get(q.image);
    if (list) list.push(q);
    else map.set(q.image, [q]);
  }
  return { images: [...map.keys()].sort(), questions: map };
}

/**
 * The first `limit` images of each kind, in name order (a fixed subset that keeps the scene/document mix);
 * every image when `limit` is undefined.
 */
export function subsetImages(
  images: string[],
  questions: Map<string, EvalQuestion[]>,
  limit?: number,
): string[] {
  if (!limit) return images;
  const of = (kind: string) => images.filter((i) => questions.get(i)![0].kind === kind).slice(0, limit);
  return [...of("scene"), ...of("doc")];
}

/**
 * The most common answer per key (e.g. per template) over `questions`. Ties go to the answer met first in
 * file order, as Python's Counter.most_common does (evaluate_v2.py's question-only prior).
 */
export function mostCommonAnswer(
  questions: EvalQuestion[],
  key: (q: EvalQuestion) => string,
): Map<string, string> {
  const counts = new Map<string, Map<string, number>>();
  for (const q of questions) {
    const k = key(q);
    const m = counts.get(k) ?? new Map<string, number>();
    m.set(q.answer, (m.get(q.answer) ?? 0) + 1);
    counts.set(k, m);
  }
  const out = new Map<string, string>();
  for (const [k, m] of counts) {
    let best = "";
    let bestN = -1;
    for (const [answer, n] of m) {
      if (n > bestN) {
        best = answer;
        bestN = n;
      }
    }
    out.set(k, best);
  }
  return out;
}
