/**
 * Images made on demand for the fixture server's `/gen/` routes: a valid
 * JPEG or PNG header padded to an exact size, cached per size, so tests and
 * benchmarks can ask for any body length without files on disk.
 */
import { crc32, deflateSync } from 'node:zlib';

/** Largest image {@link generatedImage} makes; beyond this a bad `?bytes=` would exhaust memory. */
export const MAX_GENERATED_BYTES = 64 * 1024 * 1024;

// Padding bytes; a readable pattern makes a hex dump of a generated image self-explanatory.
const PAD = 'imgdl padding ';

// An 8x8 greyscale baseline JPEG (made with Pillow, JFIF APP0 dropped), SOI first.
const MIN_JPEG = Buffer.from(
  '/9j/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/wAALCAAIAAgB' +
    'AREA/8QAFAABAAAAAAAAAAAAAAAAAAAABP/EABsQAAIBBQAAAAAAAAAAAAAAABETkRI2Y4GC/9oACAEBAAA/AD2zkZygTUToR//Z',
  'base64',
);
// Marker (2 bytes) + the length field's maximum (65535, which counts its own 2 bytes).
const MAX_COM_SEGMENT = 2 + 0xffff;
const COM_HEADER = 4;

function pngChunk(type: string, data: Buffer): Buffer {
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write(type, 4, 'latin1');
  data.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  return chunk;
}

// A 1x1 8-bit greyscale PNG up to its last IDAT; padding goes between this and IEND.
const PNG_HEAD = Buffer.concat([
  Buffer.from('89504e470d0a1a0a', 'hex'),
  pngChunk('IHDR', Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0])),
  pngChunk('IDAT', deflateSync(Buffer.from([0, 0x80]))),
]);
const PNG_IEND = pngChunk('IEND', Buffer.alloc(0));
// Length, type and CRC around the padding; the lowercase first letter marks `pdNg` ancillary, so decoders skip it.
const PNG_CHUNK_OVERHEAD = 12;

const generated = new Map<string, Buffer>();

/**
 * Deterministic, valid image bytes of exactly `bytes` length (cached per (type,bytes)).
 *
 * A tiny real image padded with JPEG COM segments or a PNG `pdNg` ancillary
 * chunk, so any decoder reads it and a download of a known size is checkable
 * byte for byte. Throws RangeError when `bytes` is not an integer, is below
 * the smallest such image (160 for jpg, 79 for png), or is above
 * {@link MAX_GENERATED_BYTES}.
 */
export function generatedImage(type: 'jpg' | 'png', bytes: number): Buffer {
  const key = `${type}:${bytes}`;
  let image = generated.get(key);
  if (!image) {
    const min = type === 'jpg' ? MIN_JPEG.length + COM_HEADER : PNG_HEAD.length + PNG_CHUNK_OVERHEAD + PNG_IEND.length;
    if (!Number.isInteger(bytes) || bytes < min || bytes > MAX_GENERATED_BYTES) {
      throw new RangeError(`generated ${type} size must be an integer from ${min} to ${MAX_GENERATED_BYTES}, got ${bytes}`);
    }
    image = type === 'jpg' ? paddedJpeg(bytes) : paddedPng(bytes);
    generated.set(key, image);
  }
  return image;
}

function paddedJpeg(bytes: number): Buffer {
  const out = Buffer.alloc(bytes, PAD);
  MIN_JPEG.copy(out, 0, 0, 2);
  // Spread the padding evenly so no segment falls under its 4-byte header.
  const padding = bytes - MIN_JPEG.length;
  const count = Math.ceil(padding / MAX_COM_SEGMENT);
  let at = 2;
  for (let i = 0; i < count; i++) {
    const size = Math.floor(padding / count) + (i < padding % count ? 1 : 0);
    out.writeUInt16BE(0xfffe, at);
    out.writeUInt16BE(size - 2, at + 2);
    at += size;
  }
  MIN_JPEG.copy(out, at, 2);
  return out;
}

function paddedPng(bytes: number): Buffer {
  const out = Buffer.alloc(bytes, PAD);
  PNG_HEAD.copy(out);
  const start = PNG_HEAD.length;
  const dataLength = bytes - start - PNG_CHUNK_OVERHEAD - PNG_IEND.length;
  out.writeUInt32BE(dataLength, start);
  out.write('pdNg', start + 4, 'latin1');
  out.writeUInt32BE(crc32(out.subarray(start + 4, start + 8 + dataLength)), start + 8 + dataLength);
  PNG_IEND.copy(out, bytes - PNG_IEND.length);
  return out;
}
