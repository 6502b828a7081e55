/**
 * Small SVG charts: a few bars need no charting library, and the console stays light.
 */
export interface Bar {
  label: string;
  value: number;
  className?: string;
  title?: string;
}

export function BarChart({ bars, unit = "", height = 160 }: { bars: Bar[]; unit?: string; height?: number }) {
  if (bars.length === 0) return <p className="muted">No data yet.</p>;
  const max = Math.max(...bars.map((b) => b.value), 1);
  // At least 20 slots, so a handful of runs gives bars, not slabs.
  const slots = Math.max(bars.length, 20);
  const width = slots * 14;
  const step = width / slots;
  return (
    <svg className="chart" viewBox={`0 0 ${width} ${height + 16}`} role="img" data-testid="bar-chart">
      <text x={2} y={10} className="chart-axis">
        {max.toFixed(max < 10 ? 1 : 0)}
        {unit}
      </text>
      <line x1={0} x2={width} y1={height} y2={height} className="chart-base" />
      {bars.map((bar, i) => {
        const h = Math.max((bar.value / max) * (height - 16), 1);
        return (
          <rect key={i} x={i * step + 1} y={height - h} width={Math.max(step - 2, 1)} height={h} className={bar.className ?? "bar"}>
            <title>{bar.title ?? `${bar.label}: ${bar.value}${unit}`}</title>
          </rect>
        );
      })}
    </svg>
  );
}

export function HorizontalBars({ bars }: { bars: Bar[] }) {
  if (bars.length === 0) return <p className="muted">None.</p>;
  const max = Math.max(...bars.map((b) => b.value), 1);
  return (
    <div className="hbars">
      {bars.map((bar) => (
        <div key={bar.label} className="hbar">
          <span className="hbar-label">{bar.label}</span>
          <span className={`hbar-fill ${bar.className ?? ""}`} style={{ width: `${(bar.value / max) * 100}%` }} />
          <span className="hbar-value">{bar.value}</span>
        </div>
      ))}
    </div>
  );
}

/** A ring showing a share, e.g. the success rate. */
export function Ring({ share, label }: { share: number | null; label: string }) {
  const r = 42;
  const circumference = 2 * Math.PI * r;
  const filled = (share ?? 0) * circumference;
  return (
    <svg className="ring" viewBox="0 0 100 100" role="img" aria-label={label}>
      <circle cx={50} cy={50} r={r} className="ring-track" />
      <circle
        cx={50}
        cy={50}
        r={r}
        className="ring-fill"
        strokeDasharray={`${filled} ${circumference - filled}`}
        transform="rotate(-90 50 50)"
      />
      <text x={50} y={55} textAnchor="middle" className="ring-text">
        {share === null ? "–" : `${Math.round(share * 100)}%`}
      </text>
    </svg>
  );
}
