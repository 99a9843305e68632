/**
 * Runs `fn` at most once per `ms`: at once when idle, and once more at the end of a burst, so a
 * page follows a stream of change events without reading its data for every single one.
 */
export function throttle(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending = false;
  return () => {
    if (timer) {
      pending = true;
      return;
    }
    fn();
    const tick = (): void => {
      if (pending) {
        pending = false;
        fn();
        timer = setTimeout(tick, ms);
      } else timer = undefined;
    };
    timer = setTimeout(tick, ms);
  };
}
