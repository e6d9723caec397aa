// What Node's form and body parsers hand to an application: busboy (fields and files),
// formidable (fields and files), body-parser (urlencoded with qs, and json), for each request
// stored under the directory given (case/headers.json and case/body). Prints one JSON object:
// { case: { parser: [base64 items] } }.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Readable } = require('stream');
const busboy = require('busboy');
const formidable = require('formidable');
const bodyParser = require('body-parser');

function request(headers, body) {
  const r = Readable.from([body]);
  r.headers = headers;
  r.method = 'POST';
  r.url = '/';
  return r;
}

function strings(v, into) {
  if (typeof v === 'string') into.push(Buffer.from(v, 'utf8'));
  else if (Array.isArray(v)) v.forEach((x) => strings(x, into));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      into.push(Buffer.from(k, 'utf8'));
      strings(x, into);
    }
  }
}

function withBusboy(headers, body) {
  return new Promise((resolve) => {
    const items = [];
    let bb;
    try {
      bb = busboy({ headers, limits: { fieldSize: 1 << 30 } });
    } catch (e) {
      return resolve(items);
    }
    bb.on('file', (name, stream) => {
      const chunks = [];
      // A cut file still hands over what it got.
      stream.on('error', () => items.push(Buffer.concat(chunks)));
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => items.push(Buffer.concat(chunks)));
    });
    bb.on('field', (name, val) => {
      items.push(Buffer.from(name, 'utf8'));
      items.push(Buffer.from(val, 'latin1'));
    });
    bb.on('close', () => resolve(items));
    bb.on('error', () => resolve(items));
    request(headers, body).pipe(bb);
  });
}

function withFormidable(headers, body) {
  return new Promise((resolve) => {
    const items = [];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'formidable-'));
    const form = formidable.formidable({
      uploadDir: dir,
      maxFileSize: 1 << 30,
      maxFieldsSize: 1 << 30,
      maxFiles: 10000,
      maxFields: 100000,
      allowEmptyFiles: true,
      minFileSize: 0,
    });
    form.parse(request(headers, body), (err, fields, files) => {
      if (!err) {
        strings(fields, items);
        for (const list of Object.values(files || {})) {
          for (const f of [].concat(list)) {
            try {
              items.push(fs.readFileSync(f.filepath));
            } catch (e) {}
          }
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
      resolve(items);
    });
  });
}

function withBodyParser(headers, body) {
  const run = (mw) =>
    new Promise((resolve) => {
      const req = request(headers, body);
      mw(req, {}, (err) => resolve(err ? undefined : req.body));
    });
  return Promise.all([
    run(bodyParser.urlencoded({ extended: true, limit: '1gb', parameterLimit: 1e6 })),
    run(bodyParser.json({ limit: '1gb', strict: false })),
  ]).then(([form, json]) => {
    const items = [];
    strings(form, items);
    strings(json, items);
    return items;
  });
}

// A parser that throws from a stream callback fails that request's reading, not the run.
process.on('uncaughtException', () => {});

async function main() {
  const root = process.argv[2];
  const out = {};
  for (const name of fs.readdirSync(root).sort()) {
    const dir = path.join(root, name);
    const headers = JSON.parse(fs.readFileSync(path.join(dir, 'headers.json')));
    const body = fs.readFileSync(path.join(dir, 'body'));
    headers['content-length'] = String(body.length);
    const result = {};
    for (const [parser, f] of [
      ['busboy', withBusboy],
      ['formidable', withFormidable],
      ['body-parser', withBodyParser],
    ]) {
      let items = [];
      try {
        items = await f(headers, body);
      } catch (e) {}
      result[parser] = items.map((b) => b.toString('base64'));
    }
    out[name] = result;
  }
  process.stdout.write(JSON.stringify(out));
}

main();
