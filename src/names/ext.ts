/**
 * A path's extension, apart from the rest of naming so that the writer
 * thread (output/disk-ops.ts) loads nothing else: every module a thread
 * imports is loaded again in it, and its first batch waits for them.
 */

/** Splits 'a/b/x.tar.jpg' → { stem: 'a/b/x.tar', ext: '.jpg' } (ext is the last extension of the last segment, '' if none; dotfiles have no ext). Accepts '\\' as a separator too, so absolute Windows paths split right. */
export function splitExt(relPath: string): { stem: string; ext: string } {
  const segmentStart = Math.max(relPath.lastIndexOf('/'), relPath.lastIndexOf('\\')) + 1;
  const dot = relPath.lastIndexOf('.');
  // A dot first in the segment makes a dotfile, a dot last makes no extension.
  if (dot <= segmentStart || dot === relPath.length - 1) return { stem: relPath, ext: '' };
  return { stem: relPath.slice(0, dot), ext: relPath.slice(dot) };
}
