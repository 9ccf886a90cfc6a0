import { join } from 'node:path';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A name as the file system gives it: bytes. `name` is its readable form, used everywhere a name is
 * shown or stored (ledger, rows, logs): the name itself when it is UTF-8, otherwise each byte that
 * is not part of valid UTF-8 written as \xHH. `bytes` is kept only for such a name: the readable
 * form would not open the file (readdir's lossy decoding is why those files used to vanish).
 */
export interface InputName {
  name: string;
  /** The relative path's bytes, base64; only when the name is not valid UTF-8. */
  bytes?: string;
}

export function inputName(raw: Buffer): InputName {
  try {
    return { name: utf8.decode(raw) };
  } catch {
    return { name: escapeInvalidUtf8(raw), bytes: raw.toString('base64') };
  }
}

/** The path of an input file: from its bytes when its name is not UTF-8. */
export function inputPath(inputDir: string, file: InputName): string | Buffer {
  if (file.bytes === undefined) return join(inputDir, file.name);
  return Buffer.concat([Buffer.from(`${inputDir}/`), Buffer.from(file.bytes, 'base64')]);
}

/** Valid UTF-8 sequences decoded, every other byte as \xHH. */
function escapeInvalidUtf8(raw: Buffer): string {
  let out = '';
  let i = 0;
  while (i < raw.length) {
    const length = sequenceLength(raw[i]!);
    const piece = length > 0 && i + length <= raw.length ? tryDecode(raw.subarray(i, i + length)) : undefined;
    if (piece === undefined) {
      out += `\\x${raw[i]!.toString(16).toUpperCase().padStart(2, '0')}`;
      i++;
    } else {
      out += piece;
      i += length;
    }
  }
  return out;
}

function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

function tryDecode(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}
