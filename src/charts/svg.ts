/**
 * Renders a Vega-Lite spec to SVG in Node: Vega-Lite compiles it to Vega, and
 * a headless Vega view (no canvas, no DOM) writes the SVG text.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** The SVG markup of `spec`. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
