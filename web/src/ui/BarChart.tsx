/**
 * A per-minute bar chart in plain SVG: a series of bars, optionally a second series drawn over
 * the first (failures within executions). The figure has a text summary for screen readers and
 * the numbers in a table below it. No chart library: sixty bars need none, and SVG prints,
 * scales and stays accessible.
 */
export interface Bar {
  at: string;
  value: number;
  /** Part of `value` drawn in the alert colour (failures). */
  part?: number;
}

const W = 600;
const H = 140;

export function BarChart({ title, bars, unit, partLabel }: { title: string; bars: Bar[]; unit: string; partLabel?: string }) {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const width = W / Math.max(1, bars.length);
  const total = bars.reduce((n, b) => n + b.value, 0);
  const peak = bars.reduce<Bar | undefined>((p, b) => (!p || b.value > p.value ? b : p), undefined);
  const time = (iso: string): string => new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  const summary =
    unit === 'ms'
      ? `${title}: highest ${peak && peak.value > 0 ? `${peak.value} ms at ${time(peak.at)}` : 'none'}`
      : `${title}: ${total} in all${peak && peak.value > 0 ? `, most ${peak.value} at ${time(peak.at)}` : ''}${partLabel ? `, ${bars.reduce((n, b) => n + (b.part ?? 0), 0)} ${partLabel}` : ''}`;
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H + 20}`} role="img" aria-label={summary} preserveAspectRatio="none">
        <line x1={0} y1={H} x2={W} y2={H} className="axis" />
        {bars.map((b, i) => {
          const h = (b.value / max) * H;
          const ph = ((b.part ?? 0) / max) * H;
          return (
            <g key={b.at}>
              <title>{`${time(b.at)}: ${b.value}${unit === 'ms' ? ' ms' : ''}${b.part ? `, ${b.part} ${partLabel ?? ''}` : ''}`}</title>
              <rect x={i * width + 1} y={H - h} width={Math.max(1, width - 2)} height={h} className="bar" />
              {ph > 0 && <rect x={i * width + 1} y={H - ph} width={Math.max(1, width - 2)} height={ph} className="bar-part" />}
            </g>
          );
        })}
        <text x={0} y={H + 16} className="tick">
          {bars[0] ? time(bars[0].at) : ''}
        </text>
        <text x={W} y={H + 16} className="tick" textAnchor="end">
          {bars.length ? time(bars[bars.length - 1]!.at) : ''}
        </text>
        <text x={2} y={12} className="tick">
          {max}
          {unit === 'ms' ? ' ms' : ''}
        </text>
      </svg>
      <p className="muted">{summary}</p>
    </figure>
  );
}
