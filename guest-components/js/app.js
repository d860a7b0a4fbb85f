// A `wasi:http/proxy@0.2.10` hello component in JavaScript, for the host's
// integration tests. Built by build.mjs with componentize-js.
//
//   any path ending in /json -> 200 application/json
//       {"lang":"js","path":"<path with query>","method":"<METHOD>","version":"<VERSION>"}
//   anything else            -> 200 text/html, <h1>Hello from JavaScript</h1> and the path
//
// build.mjs replaces the VERSION line below with the value of $APP_VERSION.
const VERSION = "1";

import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.10';

const encoder = new TextEncoder();

// wasi:io output streams take at most 4096 bytes per blocking-write-and-flush.
const CHUNK = 4096;

function methodName(method) {
  // A `method` variant: { tag: 'get' } ... or { tag: 'other', val: 'PURGE' }.
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

function escapeHtml(text) {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function respond(responseOut, status, contentType, text) {
  const bytes = encoder.encode(text);
  const headers = Fields.fromList([['content-type', encoder.encode(contentType)]]);
  const response = new OutgoingResponse(headers);
  response.setStatusCode(status);
  const body = response.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
  const stream = body.write();
  for (let off = 0; off < bytes.length; off += CHUNK) {
    stream.blockingWriteAndFlush(bytes.subarray(off, off + CHUNK));
  }
  // The stream is a child of the body: drop it before finishing the body.
  stream[Symbol.dispose]();
  OutgoingBody.finish(body, undefined);
}

export const incomingHandler = {
  handle(request, responseOut) {
    const pathWithQuery = request.pathWithQuery() ?? '/';
    const method = methodName(request.method());
    const q = pathWithQuery.indexOf('?');
    const path = q === -1 ? pathWithQuery : pathWithQuery.slice(0, q);

    if (path.endsWith('/json')) {
      const json = JSON.stringify({
        lang: 'js',
        path: pathWithQuery,
        method,
        version: VERSION,
      });
      respond(responseOut, 200, 'application/json', json);
      return;
    }

    const html =
      '<!doctype html>\n<html><head><meta charset="utf-8"><title>Hello</title></head>\n' +
      '<body><h1>Hello from JavaScript</h1>\n' +
      `<p>path: <code>${escapeHtml(pathWithQuery)}</code></p>\n` +
      `<p>method: ${escapeHtml(method)}, version: ${escapeHtml(VERSION)}</p>\n` +
      '</body></html>\n';
    respond(responseOut, 200, 'text/html; charset=utf-8', html);
  },
};
