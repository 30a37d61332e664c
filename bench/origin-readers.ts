// Child process of the origin benchmark: N readers following a live rendition's segments over
// plain TCP (a hand-written GET, the response scanned as bytes), so that the measurement costs
// as little as possible and the delays are the origin's, not an HTTP client's.
// argv: BASE_URL READERS SECONDS. Prints {delays: [ms…], errors} as JSON.
import { connect } from 'node:net';
import { MAGIC } from './origin-marker.ts';

const [base, readerCount, seconds] = [new URL(process.argv[2]!), Number(process.argv[3]), Number(process.argv[4])];
const delays: number[] = [];
let errors = 0;
const deadline = Date.now() + seconds * 1000;
const END_OF_CHUNKED = Buffer.from('\r\n0\r\n\r\n');
const now = () => performance.timeOrigin + performance.now();

function reader() {
  const socket = connect(Number(base.port), base.hostname);
  socket.setNoDelay(true);
  let segment = Math.floor(Date.now() / 1000);
  let askedAt = 0;
  let tail = Buffer.alloc(0);
  const ask = () => {
    if (Date.now() > deadline) return void socket.destroy();
    askedAt = now();
    tail = Buffer.alloc(0);
    socket.write(`GET /720p/${segment}.m4s HTTP/1.1\r\nHost: ${base.host}\r\n\r\n`);
  };
  socket.on('connect', ask);
  socket.on('error', () => errors++);
  socket.on('data', (piece: Buffer) => {
    const at = now();
    const record = (sentAt: number) => sentAt >= askedAt && delays.push(at - sentAt);
    if (tail.length) {
      const seam = Buffer.concat([tail, piece.subarray(0, 16)]);
      const m = seam.indexOf(MAGIC);
      if (m >= 0 && m < tail.length && m + 16 <= seam.length) record(seam.readDoubleBE(m + 8));
    }
    for (let m = piece.indexOf(MAGIC); m >= 0 && m + 16 <= piece.length; m = piece.indexOf(MAGIC, m + 16))
      record(piece.readDoubleBE(m + 8));
    tail = Buffer.from(piece.subarray(Math.max(0, piece.length - 15)));
    const last = Buffer.concat([tail, piece.subarray(Math.max(0, piece.length - 7))]).subarray(-7);
    if (piece.subarray(0, 12).toString() === 'HTTP/1.1 404') {
      errors++;
      segment = Math.floor(Date.now() / 1000);
      setTimeout(ask, 50);
    } else if (last.equals(END_OF_CHUNKED)) {
      segment++;
      ask();
    }
  });
}

for (let i = 0; i < readerCount; i++) reader();
setTimeout(
  () => {
    // Exit only once the (large) report has left: exiting at once would cut the pipe at 64 KiB.
    process.stdout.write(JSON.stringify({ delays: delays.map((d) => Number(d.toFixed(3))), errors }), () =>
      process.exit(0),
    );
  },
  seconds * 1000 + 500,
);
