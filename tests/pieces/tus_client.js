// tus-js-client (what Uppy runs) uploading FILE to ENDPOINT in pieces of CHUNK bytes; prints
// "success URL" or "error STATUS URL". OPTIONS, a JSON object, is added to the upload's options
// ({"uploadDataDuringCreation": true}, {"parallelUploads": 2}).
// Usage: node tus_client.js ENDPOINT FILE CHUNK [OPTIONS]
const fs = require('fs');
const tus = require('tus-js-client');
const [endpoint, file, chunk, options] = process.argv.slice(2);
const upload = new tus.Upload(fs.readFileSync(file), {
  endpoint,
  chunkSize: Number(chunk),
  retryDelays: null,
  metadata: { filename: 'x.bin' },
  ...JSON.parse(options || '{}'),
  onError: (e) => {
    const res = e.originalResponse;
    console.log('error ' + (res ? res.getStatus() : 0) + ' ' + (upload.url || ''));
  },
  onSuccess: () => console.log('success ' + upload.url),
});
upload.start();
