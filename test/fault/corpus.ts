/**
 * A generated corpus of hostile requests: truncated and corrupt images of every accepted type,
 * decompression bombs (headers that claim billions of pixels), malformed and pathological PDFs,
 * malformed multipart bodies and hostile JSON. Each case is a request to send; what it must get back
 * is a 4xx JSON answer, or a job that fails with an input code.
 */
import zlib from "node:zlib";
import sharp from "sharp";
import { malformedPdf, pathologicalPdf, writePdf } from "./pdfs.ts";

export interface Case {
  name: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /**
   * May succeed. Damage a decoder may legitimately read through (bytes flipped inside JPEG, GIF or WebP entropy
   * data give a picture of noise; pdf.js rebuilds a broken xref): such a case may also succeed.
   * Every other case must be refused.
   */
  mayDecode?: boolean;
}

const FIELDS: Record<string, string> = { prompt: "what is in the picture?", method: "fopru", keep: "16" };

/** A multipart body by hand (so that malformed ones can be made too). */
export function multipart(
  files: Array<{ field?: string; name: string; bytes: Buffer }>,
  fields: Record<string, string> = FIELDS,
  boundary = "vtcfaultboundary",
): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  }
  for (const f of files) {
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${f.field ?? "files"}"; filename="${f.name}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
      f.bytes,
      Buffer.from("\r\n"),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(parts);
}

function upload(name: string, bytes: Buffer, fields?: Record<string, string>, mayDecode = false): Case {
  return {
    mayDecode,
    name,
    path: "/v1/jobs",
    headers: { "content-type": "multipart/form-data; boundary=vtcfaultboundary" },
    body: multipart([{ name, bytes }], fields),
  };
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A PNG whose header claims `w` x `h` pixels with a few bytes of image data (a decompression bomb). */
function pngBomb(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(Buffer.alloc(1024))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A GIF whose logical screen and image claim 65535 x 65535. */
function gifBomb(): Buffer {
  const b = Buffer.from("474946383961ffffffff000000" + "2c00000000ffffffff00" + "02024c01003b", "hex");
  return b;
}

function corrupt(bytes: Buffer, at: number, n: number, seed: number): Buffer {
  const out = Buffer.from(bytes);
  let x = seed | 1;
  for (let i = 0; i < n && at + i < out.length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[at + i] ^= (x & 0xff) | 1;
  }
  return out;
}

/** Noisy pictures, so that every byte of their data matters. */
async function samples(): Promise<Record<string, Buffer>> {
  const raw = Buffer.alloc(96 * 72 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7919) % 251;
  const img = () => sharp(raw, { raw: { width: 96, height: 72, channels: 3 } });
  return {
    png: await img().png().toBuffer(),
    jpeg: await img().jpeg().toBuffer(),
    gif: await img().gif().toBuffer(),
    webp: await img().webp().toBuffer(),
    tiff: await img().tiff({ compression: "lzw" }).toBuffer(),
  };
}

function onePagePdf(): Buffer {
  const content = "1 0 0 rg 20 20 60 40 re f";
  return writePdf([
    "",
    "<</Type/Catalog/Pages 2 0 R>>",
    "<</Type/Pages/Kids[3 0 R]/Count 1>>",
    "<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]/Contents 4 0 R>>",
    `<</Length ${content.length}>>\nstream\n${content}\nendstream`,
  ]);
}

function manyPagesPdf(pages: number): Buffer {
  const objs: string[] = ["", "<</Type/Catalog/Pages 2 0 R>>"];
  const kids = Array.from({ length: pages }, (_, i) => `${3 + i} 0 R`).join(" ");
  objs.push(`<</Type/Pages/Kids[${kids}]/Count ${pages}>>`);
  for (let i = 0; i < pages; i++) objs.push("<</Type/Page/Parent 2 0 R/MediaBox[0 0 100 100]>>");
  return writePdf(objs);
}

export async function buildCorpus(): Promise<Case[]> {
  const cases: Case[] = [];
  const s = await samples();
  for (const [kind, bytes] of Object.entries(s)) {
    for (const frac of [0.05, 0.3, 0.6, 0.9]) {
      cases.push(
        upload(`${kind}-truncated-${frac}.${kind}`, bytes.subarray(0, Math.floor(bytes.length * frac))),
      );
    }
    cases.push(upload(`${kind}-header-only.${kind}`, bytes.subarray(0, 16)));
    for (const [i, at] of [0.2, 0.5, 0.8].entries()) {
      cases.push(
        upload(
          `${kind}-corrupt-${at}.${kind}`,
          corrupt(bytes, Math.floor(bytes.length * at), 64, i + 1),
          undefined,
          true,
        ),
      );
    }
    cases.push(
      upload(
        `${kind}-zeroed-tail.${kind}`,
        Buffer.concat([bytes.subarray(0, bytes.length >> 1), Buffer.alloc(bytes.length >> 1)]),
        undefined,
        true,
      ),
    );
  }
  // A PNG with a bad CRC in its header chunk.
  const badCrc = Buffer.from(s.png);
  badCrc[29] ^= 0xff;
  cases.push(upload("png-bad-crc.png", badCrc));
  // Bombs: headers that claim far more pixels than the limit.
  cases.push(upload("png-bomb-100k.png", pngBomb(100_000, 100_000)));
  cases.push(upload("png-bomb-wide.png", pngBomb(1_000_000, 60)));
  cases.push(upload("png-bomb-2^31.png", pngBomb(0x7fffffff, 0x7fffffff)));
  cases.push(upload("png-zero-size.png", pngBomb(0, 0)));
  cases.push(upload("gif-bomb.gif", gifBomb()));
  // PDFs
  const good = onePagePdf();
  cases.push(upload("pdf-noise.pdf", malformedPdf(200_000)));
  cases.push(upload("pdf-header-only.pdf", Buffer.from("%PDF-1.7\n")));
  for (const frac of [0.3, 0.6, 0.9])
    cases.push(upload(`pdf-truncated-${frac}.pdf`, good.subarray(0, Math.floor(good.length * frac))));
  cases.push(
    upload(
      "pdf-corrupt-xref.pdf",
      Buffer.from(good.toString("latin1").replace(/startxref\n\d+/, "startxref\n999999"), "latin1"),
      undefined,
      true,
    ),
  );
  cases.push(
    upload(
      "pdf-no-pages.pdf",
      writePdf(["", "<</Type/Catalog/Pages 2 0 R>>", "<</Type/Pages/Kids[]/Count 0>>"]),
    ),
  );
  cases.push(upload("pdf-100-pages.pdf", manyPagesPdf(100)));
  cases.push(
    upload(
      "pdf-self-referencing.pdf",
      writePdf(["", "<</Type/Catalog/Pages 2 0 R>>", "<</Type/Pages/Kids[2 0 R]/Count 1/Parent 2 0 R>>"]),
    ),
  );
  cases.push(upload("pdf-paths-600k.pdf", pathologicalPdf(600_000)));
  cases.push(
    upload(
      "pdf-huge-mediabox.pdf",
      Buffer.from(good.toString("latin1").replace("[0 0 200 100]", "[0 0 1e30 1e30]"), "latin1"),
      undefined,
      true,
    ),
  );
  cases.push(
    upload(
      "pdf-zero-mediabox.pdf",
      Buffer.from(good.toString("latin1").replace("[0 0 200 100]", "[0 0 0 0]"), "latin1"),
      // pdf.js gives a page with an empty MediaBox the default size
      undefined,
      true,
    ),
  );
  // Not an image at all, and empty.
  cases.push(upload("text.png", Buffer.from("hello, this is not an image\n".repeat(20))));
  cases.push(upload("empty.png", Buffer.alloc(0)));
  cases.push(upload("html.pdf", Buffer.from("<html><body>%PDF-1.4</body></html>")));
  // Malformed multipart.
  const mp = (name: string, headers: Record<string, string>, body: Buffer | string): Case => ({
    name,
    path: "/v1/jobs",
    headers,
    body: Buffer.from(body),
  });
  const okBody = multipart([{ name: "a.png", bytes: s.png }]);
  const ct = { "content-type": "multipart/form-data; boundary=vtcfaultboundary" };
  cases.push(mp("multipart-truncated", ct, okBody.subarray(0, okBody.length >> 1)));
  cases.push(mp("multipart-no-boundary-param", { "content-type": "multipart/form-data" }, okBody));
  cases.push(
    mp("multipart-wrong-boundary", { "content-type": "multipart/form-data; boundary=other" }, okBody),
  );
  cases.push(mp("multipart-garbage", ct, Buffer.from("this is not multipart at all")));
  cases.push(mp("multipart-empty", ct, Buffer.alloc(0)));
  cases.push(mp("multipart-no-closing", ct, okBody.subarray(0, okBody.length - 24)));
  cases.push(
    mp(
      "multipart-bad-part-header",
      ct,
      "--vtcfaultboundary\r\nContent-Disposition\r\n\r\nx\r\n--vtcfaultboundary--\r\n",
    ),
  );
  cases.push(mp("multipart-long-field-name", ct, multipart([], { ["x".repeat(100_000)]: "1" })));
  cases.push(
    mp(
      "multipart-long-field",
      ct,
      multipart([{ name: "a.png", bytes: s.png }], { ...FIELDS, prompt: "p".repeat(400_000) }),
    ),
  );
  cases.push(
    mp(
      "multipart-too-many-files",
      ct,
      multipart(Array.from({ length: 20 }, (_, i) => ({ name: `${i}.png`, bytes: s.png }))),
    ),
  );
  cases.push(
    mp(
      "multipart-too-many-fields",
      ct,
      multipart(
        [{ name: "a.png", bytes: s.png }],
        Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}`, "1"])),
      ),
    ),
  );
  cases.push(mp("multipart-no-files", ct, multipart([])));
  cases.push(mp("json-to-jobs", { "content-type": "application/json" }, '{"prompt":"x"}'));
  // Hostile field values on /v1/jobs.
  const field = (name: string, over: Record<string, string>) =>
    upload(`jobs-${name}.png`, s.png, { ...FIELDS, ...over });
  cases.push(field("options-proto", { options: '{"__proto__":{"polluted":1}}' }));
  cases.push(field("options-constructor", { options: '{"constructor":{"prototype":{"x":1}}}' }));
  cases.push(field("options-not-json", { options: "{not json" }));
  cases.push(field("options-deep", { options: `${"[".repeat(5000)}${"]".repeat(5000)}` }));
  cases.push(field("options-array", { options: "[1,2,3]" }));
  cases.push(field("keep-negative", { keep: "-5" }));
  cases.push(field("keep-huge", { keep: "1e308" }));
  cases.push(field("keep-nan", { keep: "NaN" }));
  cases.push({ ...field("keep-hex", { keep: "0x10" }), mayDecode: true });
  cases.push(field("ratio-zero", { ratio: "0", keep: "" }));
  cases.push(field("method-unknown", { method: "../../etc/passwd" }));
  cases.push(field("method-proto", { method: "__proto__" }));
  cases.push(field("mode-bad", { mode: "everything" }));
  cases.push(field("layout-bad", { layout: "sideways" }));
  cases.push(field("prompt-empty", { prompt: "" }));
  cases.push(field("prompt-long", { prompt: "q".repeat(5000) }));
  // Layers the model does not export: refused at the edge, not a silent fallback or a worker failure.
  cases.push(field("fopru-layer-999", { method: "fopru", keep: "9", options: '{"layer":999}' }));
  cases.push(field("tcgc-lowlayer-999", { method: "tcgc", keep: "", options: '{"lowLayer":999}' }));
  // Hostile JSON on the chat route.
  const chat = (name: string, body: string): Case => ({
    name: `chat-${name}`,
    path: "/v1/chat/completions",
    headers: { "content-type": "application/json" },
    body: Buffer.from(body),
  });
  const dataUri = (b: Buffer, mime = "image/png") => `data:${mime};base64,${b.toString("base64")}`;
  const msg = (content: unknown, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ model: "vtc-tiny", messages: [{ role: "user", content }], ...extra });
  const img = (url: string) => [
    { type: "text", text: "what is it?" },
    { type: "image_url", image_url: { url } },
  ];
  cases.push(chat("not-json", "{messages: nope"));
  cases.push(chat("empty", ""));
  cases.push(chat("null", "null"));
  cases.push(chat("array", "[]"));
  cases.push(chat("deep", `${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`));
  cases.push(chat("no-messages", '{"model":"vtc-tiny"}'));
  cases.push(chat("messages-string", '{"model":"vtc-tiny","messages":"hi"}'));
  cases.push(chat("proto", '{"__proto__":{"admin":true},"model":"vtc-tiny","messages":[]}'));
  cases.push(chat("truncated-image", msg(img(dataUri(s.png.subarray(0, 100))))));
  cases.push(chat("bomb-image", msg(img(dataUri(pngBomb(100_000, 100_000))))));
  cases.push(chat("bad-base64", msg(img("data:image/png;base64,@@@@"))));
  cases.push(chat("remote-url", msg(img("http://169.254.169.254/latest/meta-data/"))));
  cases.push(chat("file-url", msg(img("file:///etc/passwd"))));
  cases.push(
    chat(
      "vtc-proto",
      // (a "__proto__" key in a literal would set the prototype, not write the key: replaced in the text)
      msg(img(dataUri(s.png)), { vtc: { method: "fopru", keep: 16, options: { PROTO: { x: 1 } } } }).replace(
        '"PROTO"',
        '"__proto__"',
      ),
    ),
  );
  cases.push(chat("vtc-unknown-method", msg(img(dataUri(s.png)), { vtc: { method: "nope" } })));
  // Documented: a max_tokens above the model's limit is clamped to it (the answer says so).
  cases.push({ ...chat("max-tokens-huge", msg(img(dataUri(s.png)), { max_tokens: 1e12 })), mayDecode: true });
  cases.push(
    chat("role-bad", JSON.stringify({ model: "vtc-tiny", messages: [{ role: "root", content: "x" }] })),
  );
  return cases;
}
