import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { decodeFile } from "../../pipeline/decode.ts";
import { parsePageSelection } from "../../pipeline/pages.ts";
import { InputError } from "../../common/errors.ts";
import { loadLimits } from "../../common/config.ts";
import { sniffType } from "../../pipeline/sniff.ts";
import { makePdf, solidPng } from "./fixtures.ts";

const limits = { ...loadLimits({}), pdfRenderSide: 200 };

async function expectInputError(p: Promise<unknown>, code: string, status: number): Promise<InputError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  const ie = err as InputError;
  expect(ie.code).toBe(code);
  expect(ie.status).toBe(status);
  expect(ie.field).toBe("files[0]");
  return ie;
}

describe("type sniffing (bytes, not names)", () => {
  it("recognises every supported type", async () => {
    const base = sharp({ create: { width: 4, height: 4, channels: 3, background: "#808080" } });
    expect(await sniffType(await base.clone().png().toBuffer())).toMatchObject({ kind: "png" });
    expect(await sniffType(await base.clone().jpeg().toBuffer())).toMatchObject({ kind: "jpeg" });
    expect(await sniffType(await base.clone().webp().toBuffer())).toMatchObject({ kind: "webp" });
    expect(await sniffType(await base.clone().tiff().toBuffer())).toMatchObject({ kind: "tiff" });
    expect(await sniffType(await base.clone().gif().toBuffer())).toMatchObject({ kind: "gif" });
    expect(await sniffType(makePdf(1))).toMatchObject({ kind: "pdf" });
    expect((await sniffType(Buffer.from("hello, not an image"))).mime).toBeNull();
  });
});

describe("decodeFile", () => {
  it("applies the EXIF orientation", async () => {
    // 8 wide x 4 high, orientation 6 (rotate 90 degrees clockwise to display) -> 4 x 8.
    const jpg = await sharp({ create: { width: 8, height: 4, channels: 3, background: "#00c800" } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const out = await decodeFile(jpg, limits, "files[0]");
    expect(out.kind).toBe("jpeg");
    expect([out.pages[0].image.width, out.pages[0].image.height]).toEqual([4, 8]);
  });

  it("takes the first frame of an animated GIF", async () => {
    const red = await solidPng(8, 6, [255, 0, 0]);
    const blue = await solidPng(8, 6, [0, 0, 255]);
    const gif = await sharp([red, blue], { join: { animated: true } })
      .gif()
      .toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(2);
    const out = await decodeFile(gif, limits, "files[0]");
    const img = out.pages[0].image;
    expect([img.width, img.height]).toEqual([8, 6]);
    expect(Array.from(img.data.subarray(0, 3))).toEqual([255, 0, 0]);
  });

  it("flattens alpha onto white and gives 8-bit RGB for 16-bit input", async () => {
    const png16 = await sharp({
      create: { width: 4, height: 4, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0.5 } },
    })
      .toColourspace("rgb16")
      .png()
      .toBuffer();
    const img = (await decodeFile(png16, limits, "files[0]")).pages[0].image;
    expect(img.data.length).toBe(4 * 4 * 3);
    const px = Array.from(img.data.subarray(0, 3));
    for (const [got, want] of px.map((v, i) => [v, [132, 137, 142][i]]))
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1);
  });

  it("rejects empty, unknown, corrupt and oversized files with typed errors", async () => {
    await expectInputError(decodeFile(Buffer.alloc(0), limits, "files[0]"), "empty_file", 400);
    const e = await expectInputError(
      decodeFile(Buffer.from("not an image, nor a PDF"), limits, "files[0]"),
      "unsupported_type",
      415,
    );
    // A GIF signature with nothing after it is a GIF that does not decode (the API's probe says the same).
    await expectInputError(decodeFile(Buffer.from("GIF? no."), limits, "files[0]"), "corrupt_file", 422);
    expect(e.limit).toContain("png");
    const png = await solidPng(64, 64, [1, 2, 3]);
    await expectInputError(decodeFile(png.subarray(0, 60), limits, "files[0]"), "corrupt_file", 422);
    const big = await expectInputError(
      decodeFile(png, { ...limits, maxPixels: 1000 }, "files[0]"),
      "too_many_pixels",
      413,
    );
    expect(big.limit).toBe(1000);
    await expectInputError(
      decodeFile(png, { ...limits, maxFileBytes: 10 }, "files[0]"),
      "file_too_large",
      413,
    );
  });

  it("renders PDF pages and enforces the page limit", async () => {
    const out = await decodeFile(makePdf(2, 200, 100), limits, "files[0]");
    expect(out.kind).toBe("pdf");
    expect(out.pages.length).toBe(2);
    const img = out.pages[0].image;
    expect([img.width, img.height]).toEqual([200, 100]);
    // A red rectangle spans x 20..80, y 20..60 in PDF points (origin bottom left).
    const at = (x: number, y: number) =>
      Array.from(img.data.subarray((y * 200 + x) * 3, (y * 200 + x) * 3 + 3));
    expect(at(50, 60)).toEqual([255, 0, 0]);
    expect(at(150, 50)).toEqual([0, 0, 255]);
    expect(at(5, 5)).toEqual([255, 255, 255]);
    const e = await expectInputError(
      decodeFile(makePdf(3), { ...limits, maxPages: 2 }, "files[0]"),
      "too_many_pages",
      413,
    );
    expect(e.limit).toBe(2);
    await expectInputError(
      decodeFile(Buffer.from("%PDF-1.4\ngarbage"), limits, "files[0]"),
      "corrupt_file",
      422,
    );
  });
});

describe("page selections", () => {
  it("renders only the pages picked, and the page limit counts those", async () => {
    const three = makePdf(3);
    const out = await decodeFile(three, { ...limits, maxPages: 2 }, "files[0]", [1, 3]);
    expect(out.pages.map((p) => p.page)).toEqual([0, 2]);
    expect(out.pageCount).toBe(3);
    await expect(decodeFile(three, limits, "files[0]", parsePageSelection("2-4"))).rejects.toMatchObject({
      code: "bad_request",
      field: "pages",
      limit: 3,
    });
    await expect(decodeFile(three, { ...limits, maxPages: 1 }, "files[0]", [1, 2])).rejects.toMatchObject({
      code: "too_many_pages",
      status: 413,
      field: "pages",
    });
  });

  it("parses 1-3,7 as readers number pages", () => {
    expect(parsePageSelection("1-3,7")).toEqual([1, 2, 3, 7]);
    expect(parsePageSelection(" 7 , 2-3, 2 ")).toEqual([2, 3, 7]);
    for (const bad of ["", "0", "3-1", "a", "1,,2", "-2"])
      expect(() => parsePageSelection(bad), bad).toThrow(/pages:/);
  });
});
