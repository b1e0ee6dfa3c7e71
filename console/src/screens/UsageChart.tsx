// Stacked hourly bars by verification outcome (recharts), loaded lazily.
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { UsageBucket, UsageCount } from '../../../gen/keyward/v1/usage_service_pb.js';
import type { VerifyCode } from '../../../gen/keyward/v1/key_service_pb.js';
import { formatCount, formatHour, toDate, verifyCodeInfo } from '../format.js';

/** What the chart draws: hourly buckets and totals by outcome (GetKeyUsage, GetWorkspaceUsage). */
export interface Report {
  buckets: UsageBucket[];
  totals: UsageCount[];
  total: bigint;
}

const HOUR = 3_600_000;

export default function UsageChart({ report, hours }: { report: Report; hours: number }) {
  const codes = report.totals.map((t) => t.code);
  const end = Math.floor(Date.now() / HOUR) * HOUR;
  const byHour = new Map<number, UsageBucket>();
  for (const b of report.buckets) {
    const d = toDate(b.startTime);
    if (d) byHour.set(d.getTime(), b);
  }
  const data = [];
  for (let h = end - (hours - 1) * HOUR; h <= end; h += HOUR) {
    const row: Record<string, number | string> = { hour: formatHour(new Date(h)) };
    const b = byHour.get(h);
    for (const c of codes) row[String(c)] = Number(b?.counts.find((x) => x.code === c)?.count ?? 0n);
    data.push(row);
  }
  const summary = report.totals.map((t) => `${verifyCodeInfo(t.code).label}: ${formatCount(t.count)}`).join(', ');
  return (
    <>
      <ul className="usage-totals" aria-label="Totals">
        <li>
          <span className="usage-total-value">{formatCount(report.total)}</span>
          <span className="usage-total-label">verifications</span>
        </li>
        {report.totals.map((t) => (
          <li key={t.code}>
            <span className="usage-dot" style={{ background: verifyCodeInfo(t.code).color }} aria-hidden="true" />
            <span className="usage-total-value">{formatCount(t.count)}</span>
            <span className="usage-total-label">{verifyCodeInfo(t.code).label.toLowerCase()}</span>
          </li>
        ))}
      </ul>
      <figure className="chart" role="img" aria-label={`Hourly verifications by outcome. ${summary}`} data-testid="usage-chart">
        <ResponsiveContainer width="100%" height={260}>
          <BarChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: -16 }}>
            <CartesianGrid vertical={false} stroke="#e5e7eb" />
            <XAxis dataKey="hour" tickLine={false} axisLine={false} fontSize={11} minTickGap={24} stroke="#6b7280" />
            <YAxis allowDecimals={false} tickLine={false} axisLine={false} fontSize={11} stroke="#6b7280" />
            <Tooltip cursor={{ fill: 'rgba(99,102,241,0.06)' }} />
            <Legend iconType="circle" iconSize={8} wrapperStyle={{ fontSize: 12 }} />
            {codes.map((c: VerifyCode) => (
              <Bar
                key={c}
                dataKey={String(c)}
                name={verifyCodeInfo(c).label}
                stackId="outcome"
                fill={verifyCodeInfo(c).color}
                maxBarSize={28}
                isAnimationActive={false}
              />
            ))}
          </BarChart>
        </ResponsiveContainer>
      </figure>
    </>
  );
}
