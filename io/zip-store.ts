/**
 * The part of the ZIP format (PKWARE APPNOTE) that torch.save archives use, written here. A torch.save
 * file is a ZIP of uncompressed ("stored") entries whose data start on 64-byte boundaries (torch pads
 * the local header's extra field for that, so the storages can be memory-mapped). npm's zip
 * libraries write deflated entries or cannot place that padding, and the subset is ~150 lines.
 *
 * Writer: stored entries, CRC-32 and sizes in the local headers (no data descriptors), the 64-byte
 * padding in an extra field with torch's id "FB", a central directory and an end record; no ZIP64
 * (a payload is far below 4 GiB; larger input is refused).
 * Reader: end record (and its ZIP64 form, which torch also writes), central directory, local headers;
 * stored or deflated entries; CRC-32 checked; every offset bounds-checked against the buffer.
 */
import { inflateRawSync } from "node:zlib";
import { TensorFormatError } from "./tensor.ts";

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface ZipEntry {
  name: string;
  data: Uint8Array;
}

const ALIGN = 64;
const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const END_SIG = 0x06054b50;
const END64_SIG = 0x06064b50;
const END64_LOCATOR_SIG = 0x07064b50;

/** A ZIP of stored entries, each entry's data aligned to 64 bytes from the start of the archive. */
export function writeStoredZip(entries: readonly ZipEntry[]): Buffer {
  const parts: Uint8Array[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    if (e.data.byteLength >= 0xffffffff) throw new TensorFormatError(`zip entry ${e.name} is over 4 GiB`);
    const crc = crc32(e.data);
    const pad = (ALIGN - ((offset + 30 + name.length + 4) % ALIGN)) % ALIGN;
    const local = Buffer.alloc(30 + name.length + 4 + pad);
    local.writeUInt32LE(LOCAL_SIG, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0
    local.writeUInt16LE(0x0800, 6); // general purpose flags: names are UTF-8
    local.writeUInt16LE(0, 8); // method: stored
    local.writeUInt32LE(0, 10); // DOS time and date: none
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.byteLength, 18);
    local.writeUInt32LE(e.data.byteLength, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(4 + pad, 28);
    name.copy(local, 30);
    local.writeUInt16LE(0x4246, 30 + name.length); // "FB": torch's padding field
    local.writeUInt16LE(pad, 32 + name.length);
    local.fill(0x5a, 34 + name.length); // 'Z'
    const c = Buffer.alloc(46 + name.length);
    c.writeUInt32LE(CENTRAL_SIG, 0);
    c.writeUInt16LE(20, 4); // version made by
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(0x0800, 8);
    c.writeUInt16LE(0, 10);
    c.writeUInt32LE(0, 12);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(e.data.byteLength, 20);
    c.writeUInt32LE(e.data.byteLength, 24);
    c.writeUInt16LE(name.length, 28);
    // extra, comment, disk, internal and external attributes: all zero
    c.writeUInt32LE(offset, 42);
    name.copy(c, 46);
    central.push(c);
    parts.push(local, e.data);
    offset += local.length + e.data.byteLength;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(END_SIG, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

/** Reads every entry of a ZIP held in memory; names map to their (uncompressed) bytes. */
export function readZip(buf: Uint8Array, maxEntryBytes = 1 << 30): Map<string, Uint8Array> {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const fail = (msg: string): never => {
    throw new TensorFormatError(`zip archive: ${msg}`);
  };
  const u16 = (o: number) => (o + 2 <= buf.byteLength ? v.getUint16(o, true) : fail("truncated"));
  const u32 = (o: number) => (o + 4 <= buf.byteLength ? v.getUint32(o, true) : fail("truncated"));
  const u64 = (o: number) => {
    const n = o + 8 <= buf.byteLength ? v.getBigUint64(o, true) : fail("truncated");
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) fail("offset too large");
    return Number(n);
  };
  let end = -1;
  for (let o = buf.byteLength - 22; o >= Math.max(0, buf.byteLength - 22 - 0xffff); o--) {
    if (v.getUint32(o, true) === END_SIG) {
      end = o;
      break;
    }
  }
  if (end < 0) fail("no end-of-central-directory record (not a zip file, or truncated)");
  let count = u16(end + 10);
  let cdSize = u32(end + 12);
  let cdOffset = u32(end + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = end - 20;
    if (loc < 0 || u32(loc) !== END64_LOCATOR_SIG) fail("ZIP64 locator missing");
    const e64 = u64(loc + 8);
    if (u32(e64) !== END64_SIG) fail("ZIP64 end record missing");
    count = u64(e64 + 32);
    cdSize = u64(e64 + 40);
    cdOffset = u64(e64 + 48);
  }
  if (cdOffset + cdSize > buf.byteLength) fail("central directory beyond the end of the file");
  const out = new Map<string, Uint8Array>();
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (u32(p) !== CENTRAL_SIG) fail(`central directory entry ${i} has a bad signature`);
    const flags = u16(p + 8);
    const method = u16(p + 10);
    const crc = u32(p + 16);
    let csize = u32(p + 20);
    let usize = u32(p + 24);
    const nameLen = u16(p + 28);
    const extraLen = u16(p + 30);
    const commentLen = u16(p + 32);
    let local = u32(p + 42);
    if (p + 46 + nameLen > buf.byteLength) fail("truncated central directory");
    const name = new TextDecoder().decode(buf.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information (id 1) replaces the saturated 32-bit fields, in this order.
    for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen; ) {
      const id = u16(x);
      const size = u16(x + 2);
      if (id === 1) {
        let q = x + 4;
        if (usize === 0xffffffff) {
          usize = u64(q);
          q += 8;
        }
        if (csize === 0xffffffff) {
          csize = u64(q);
          q += 8;
        }
        if (local === 0xffffffff) local = u64(q);
      }
      x += 4 + size;
    }
    if (flags & 1) fail(`entry ${name} is encrypted`);
    if (u32(local) !== LOCAL_SIG) fail(`entry ${name}: bad local header`);
    const start = local + 30 + u16(local + 26) + u16(local + 28);
    if (start + csize > buf.byteLength) fail(`entry ${name} runs past the end of the file`);
    if (usize > maxEntryBytes) fail(`entry ${name} is ${usize} bytes, over the limit of ${maxEntryBytes}`);
    const raw = buf.subarray(start, start + csize);
    let data: Uint8Array;
    if (method === 0) data = raw;
    else if (method === 8) {
      try {
        data = inflateRawSync(raw, { maxOutputLength: Math.max(1, usize) });
      } catch (err) {
        return fail(`entry ${name}: deflate data is corrupt (${(err as Error).message})`);
      }
    } else return fail(`entry ${name}: compression method ${method} is not supported`);
    if (data.byteLength !== usize) fail(`entry ${name}: ${data.byteLength} bytes, header says ${usize}`);
    if (crc32(data) !== crc) fail(`entry ${name}: CRC-32 mismatch (corrupt or truncated payload)`);
    out.set(name, data);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}
