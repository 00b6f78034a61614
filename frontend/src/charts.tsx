// Small SVG charts: a line chart over labelled points, a heat map of features x runs, a bar chart.
// No chart library: three shapes are all the pages draw.

type Point = { label: string; value: number | null; mark?: boolean };
export type Series = { name: string; points: Point[]; color?: string };

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

function fmt(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(4).replace(/\.?0+$/, "");
}
export { fmt };

export function LineChart(props: { series: Series[]; threshold?: number | null; height?: number; title: string }) {
  const width = 640;
  const height = props.height ?? 200;
  const pad = { l: 48, r: 12, t: 12, b: 40 };
  const labels = props.series[0]?.points.map((p) => p.label) ?? [];
  const values = props.series.flatMap((s) => s.points.map((p) => p.value)).filter((v): v is number => v !== null);
  if (props.threshold !== null && props.threshold !== undefined) values.push(props.threshold);
  if (!values.length) return <p class="muted">{props.title}: no values yet</p>;
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi === lo) {
    hi += 0.5;
    lo -= 0.5;
  }
  const x = (i: number) => pad.l + (labels.length <= 1 ? 0 : (i * (width - pad.l - pad.r)) / (labels.length - 1));
  const y = (v: number) => pad.t + ((hi - v) * (height - pad.t - pad.b)) / (hi - lo);
  const step = Math.max(1, Math.ceil(labels.length / 12));
  return (
    <svg class="chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-label={props.title}>
      <title>{props.title}</title>
      <line x1={pad.l} y1={height - pad.b} x2={width - pad.r} y2={height - pad.b} class="axis" />
      <text x={4} y={y(hi) + 4} class="tick">{fmt(hi)}</text>
      <text x={4} y={y(lo) + 4} class="tick">{fmt(lo)}</text>
      {labels.map((label, i) =>
        i % step === 0 ? (
          <text x={x(i)} y={height - pad.b + 14} class="tick" text-anchor="middle">{label}</text>
        ) : null,
      )}
      {props.threshold !== null && props.threshold !== undefined ? (
        <g>
          <line x1={pad.l} x2={width - pad.r} y1={y(props.threshold)} y2={y(props.threshold)} class="threshold" />
          <text x={width - pad.r} y={y(props.threshold) - 3} class="tick" text-anchor="end">threshold {fmt(props.threshold)}</text>
        </g>
      ) : null}
      {props.series.map((s, si) => {
        const color = s.color ?? COLORS[si % COLORS.length];
        const pts = s.points.map((p, i) => (p.value === null ? null : [x(i), y(p.value), p] as const)).filter(Boolean) as [number, number, Point][];
        return (
          <g>
            <polyline points={pts.map(([px, py]) => `${px},${py}`).join(" ")} fill="none" stroke={color} stroke-width="1.5" />
            {pts.map(([px, py, p]) => (
              <circle cx={px} cy={py} r={p.mark ? 5 : 2.5} fill={p.mark ? "#fff" : color} stroke={color} stroke-width={p.mark ? 2 : 1}>
                <title>{`${s.name} ${p.label}: ${fmt(p.value)}${p.mark ? " (champion)" : ""}`}</title>
              </circle>
            ))}
          </g>
        );
      })}
      {props.series.length > 1
        ? props.series.map((s, si) => (
            <text x={pad.l + si * 130} y={height - 6} class="legend" fill={s.color ?? COLORS[si % COLORS.length]}>{s.name}</text>
          ))
        : null}
    </svg>
  );
}

export function Heatmap(props: { rows: string[]; columns: string[]; value: (row: string, col: number) => number | null; threshold: number; title: string }) {
  const cell = 14;
  const left = 160;
  const top = 8;
  const width = left + Math.max(1, props.columns.length) * cell + 8;
  const height = top + props.rows.length * cell + 30;
  const color = (v: number | null) => {
    if (v === null) return "#eee";
    const t = Math.min(1, v / (2 * props.threshold));
    return v > props.threshold ? `rgb(214,${Math.round(120 - 80 * t)},${Math.round(60 - 40 * t)})` : `rgb(${Math.round(230 - 60 * t)},${Math.round(240 - 40 * t)},${Math.round(230 - 100 * t)})`;
  };
  return (
    <svg class="heat" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={props.title}>
      <title>{props.title}</title>
      {props.rows.map((row, r) => (
        <g>
          <text x={left - 6} y={top + r * cell + 11} class="tick" text-anchor="end">{row.length > 24 ? `${row.slice(0, 23)}…` : row}</text>
          {props.columns.map((col, c) => {
            const v = props.value(row, c);
            return (
              <rect x={left + c * cell} y={top + r * cell} width={cell - 1} height={cell - 1} fill={color(v)}>
                <title>{`${row} @ ${col}: PSI ${fmt(v)}${v !== null && v > props.threshold ? " (over threshold)" : ""}`}</title>
              </rect>
            );
          })}
        </g>
      ))}
      <text x={4} y={height - 8} class="tick">{props.columns.length} monitoring run(s), oldest left; red: PSI over {fmt(props.threshold)}</text>
    </svg>
  );
}

export function Bars(props: { items: { label: string; value: number }[]; title: string }) {
  const width = 640;
  const height = 150;
  const pad = { l: 48, b: 30, t: 10 };
  const max = Math.max(1, ...props.items.map((i) => i.value));
  const w = (width - pad.l - 8) / Math.max(1, props.items.length);
  return (
    <svg class="chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-label={props.title}>
      <title>{props.title}</title>
      <text x={4} y={pad.t + 8} class="tick">{fmt(max)}</text>
      {props.items.map((item, i) => {
        const h = ((height - pad.t - pad.b) * item.value) / max;
        return (
          <g>
            <rect x={pad.l + i * w + 1} y={height - pad.b - h} width={Math.max(1, w - 2)} height={h} class="bar">
              <title>{`${item.label}: ${item.value} rows`}</title>
            </rect>
            {i % Math.max(1, Math.ceil(props.items.length / 7)) === 0 ? (
              <text x={pad.l + i * w + w / 2} y={height - pad.b + 14} class="tick" text-anchor="middle">{item.label.slice(5)}</text>
            ) : null}
          </g>
        );
      })}
    </svg>
  );
}
