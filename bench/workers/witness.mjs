/**
 * An idle witness for bench/workers.ts: a process that does nothing but wake every millisecond and
 * note how late it woke. It does none of the measured work, so a late wake-up is the machine (the
 * hypervisor, the kernel, other tasks) holding back an ordinary process: what holds back the router
 * and the workers at that moment too. Plain JavaScript, so it starts at once and loads nothing.
 * IPC: 'start' clears the record; 'report' answers { longestMs, over3, over10 } since then.
 */
let last = performance.now();
let longestMs = 0;
let over3 = 0;
let over10 = 0;
const tick = () => {
  const now = performance.now();
  const late = now - last - 1;
  last = now;
  if (late > longestMs) longestMs = late;
  if (late > 3) over3++;
  if (late > 10) over10++;
  setTimeout(tick, 1);
};
setTimeout(tick, 1);
process.on('message', (m) => {
  if (m === 'start') {
    longestMs = 0;
    over3 = 0;
    over10 = 0;
  } else if (m === 'report') {
    process.send({ longestMs, over3, over10 });
  }
});
// The bench stops it with a signal; should the bench die first, it goes with it.
process.on('disconnect', () => process.exit(0));
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1_000).unref();
