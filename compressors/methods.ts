/**
 * The list of methods: one line per method file (each file's default export is its `defineMethod()`).
 * Adding a method is writing its file and adding its line here (compressors/README.md).
 */
export { default as cdpruner } from "./cdpruner.ts";
export { default as clsAttention } from "./cls-attention.ts";
export { default as dart } from "./dart.ts";
export { default as divprune } from "./divprune.ts";
export { default as fopru } from "./fopru.ts";
export { default as none } from "./none.ts";
export { default as pitome } from "./pitome.ts";
export { default as random } from "./random.ts";
export { default as tcgc } from "./tcgc.ts";
export { default as tokenflex } from "./tokenflex.ts";
export { default as tome } from "./tome.ts";
export { default as visionzip } from "./visionzip.ts";
