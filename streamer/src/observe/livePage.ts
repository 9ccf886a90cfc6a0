import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT } from '../../../lib/paths.ts';

/** The page's own files: HTML, CSS and one module, served as they are in the sources (no build step). */
export const PAGE_DIR = join(ROOT, 'streamer/src/observe/page');

export interface PageFile {
  status: 200;
  type: string;
  body: string;
}

/**
 * The live page's routes for the HTTP server, uPlot among them, from node_modules: the page
 * fetches nothing from elsewhere and works offline. The files are read once, at start: a missing
 * one (an image built without them) stops the start, naming it, rather than serving a broken page.
 */
export async function livePageRoutes(): Promise<Record<string, () => Promise<PageFile>>> {
  const uplot = (file: string) => createRequire(import.meta.url).resolve(`uplot/dist/${file}`);
  const js = 'text/javascript; charset=utf-8';
  const css = 'text/css; charset=utf-8';
  const files: Array<[url: string, path: string, type: string]> = [
    ['/', join(PAGE_DIR, 'index.html'), 'text/html; charset=utf-8'],
    ['/page.css', join(PAGE_DIR, 'page.css'), css],
    ['/page.js', join(PAGE_DIR, 'page.js'), js],
    ['/vendor/uPlot.iife.min.js', uplot('uPlot.iife.min.js'), js],
    ['/vendor/uPlot.min.css', uplot('uPlot.min.css'), css],
  ];
  const routes: Record<string, () => Promise<PageFile>> = {};
  for (const [url, path, type] of files) {
    const body = await readFile(path, 'utf8').catch((err: Error) => {
      throw new Error(`the live page's file ${path} cannot be read: ${err.message}`, { cause: err });
    });
    routes[url] = async () => ({ status: 200, type, body });
  }
  return routes;
}
