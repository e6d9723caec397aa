// The tus reference server for Node (@tus/server with @tus/file-store): uploads under /files,
// stored in DIR. Usage: node tus_server.js PORT DIR
const http = require('http');
const { Server } = require('@tus/server');
const { FileStore } = require('@tus/file-store');
const [port, dir] = process.argv.slice(2);
const tus = new Server({ path: '/files', datastore: new FileStore({ directory: dir }) });
http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), '127.0.0.1', () => {
  console.log('listening');
});
