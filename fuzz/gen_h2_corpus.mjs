// Regenerates fuzz/corpus/h2/: what Node's http2 client sends on a few
// valid connections (the bytes after the connection preface), captured by a
// TCP listener that answers with an empty SETTINGS and a SETTINGS ACK.
// Usage: node fuzz/gen_h2_corpus.mjs   (from the repository root)
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';

const PREFACE_LEN = 24;
const cases = {
  'get': (s) => [s.request({ ':method': 'GET', ':path': '/v1/models?x=1' })],
  'post-body': (s) => {
    const st = s.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
    st.end(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }));
    return [st];
  },
  'many-streams': (s) => Array.from({ length: 6 }, (_, i) => {
    const p = ['/e', '/h', '/s', '/l'][i % 4];
    const st = s.request({ ':method': i % 2 ? 'POST' : 'GET', ':path': `${p}/${i}`, cookie: `a=${i}` }, { endStream: i % 2 === 0 });
    if (i % 2) st.end('body'.repeat(i * 100));
    return st;
  }),
  'rst-and-trailers': (s) => {
    const a = s.request({ ':method': 'POST', ':path': '/s/x' }, { waitForTrailers: true });
    a.on('wantTrailers', () => a.sendTrailers({ 'x-t': '1' }));
    a.end('data');
    const b = s.request({ ':method': 'GET', ':path': '/h/y' });
    setTimeout(() => b.close(http2.constants.NGHTTP2_CANCEL), 50);
    return [a, b];
  },
  'big-body': (s) => {
    const st = s.request({ ':method': 'PUT', ':path': '/e', 'content-length': '5000' });
    st.end(Buffer.alloc(5000, 0x62));
    return [st];
  },
};

for (const [name, run] of Object.entries(cases)) {
  const bytes = await new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const srv = net.createServer((sock) => {
      sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]));
      sock.on('data', (d) => (got = Buffer.concat([got, d])));
      sock.on('error', () => {});
      setTimeout(() => {
        sock.destroy();
        srv.close();
        resolve(got);
      }, 300);
    });
    srv.listen(0, '127.0.0.1', () => {
      const s = http2.connect(`http://127.0.0.1:${srv.address().port}`);
      s.on('error', () => {});
      for (const st of run(s)) st.on('error', () => {});
      setTimeout(() => s.destroy(), 250);
    });
  });
  fs.writeFileSync(`fuzz/corpus/h2/${name}`, bytes.subarray(PREFACE_LEN));
  console.log(`${name}: ${bytes.length - PREFACE_LEN} bytes`);
}
