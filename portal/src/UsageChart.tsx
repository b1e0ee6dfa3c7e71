import { VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import type { GetKeyUsageResponse } from '../../gen/keyward/v1/usage_service_pb.js';
import { codeLabel, dateOf, formatTime } from './format.js';

const HOUR = 3_600_000;

/** Valid, limited (rate limit or usage), refused (everything else). */
function tone(code: VerifyCode): 'ok' | 'limited' | 'refused' {
  if (code === VerifyCode.VALID) return 'ok';
  if (code === VerifyCode.RATE_LIMITED || code === VerifyCode.USAGE_EXCEEDED) return 'limited';
  return 'refused';
}

const TONES = ['ok', 'limited', 'refused'] as const;

/** Hourly verifications of the last 24 hours as stacked bars, with totals per outcome. */
export function UsageChart({ usage, now }: { usage: GetKeyUsageResponse; now: number }) {
  const end = Math.floor(now / HOUR) * HOUR;
  const hours = Array.from({ length: 24 }, (_, i) => end - (23 - i) * HOUR);
  const byHour = new Map<number, { ok: number; limited: number; refused: number; total: number; parts: string[] }>();
  for (const b of usage.buckets) {
    const t = dateOf(b.startTime)?.getTime();
    if (t === undefined) continue;
    const h = { ok: 0, limited: 0, refused: 0, total: 0, parts: [] as string[] };
    for (const c of b.counts) {
      const n = Number(c.count);
      h[tone(c.code)] += n;
      h.total += n;
      h.parts.push(`${n} ${codeLabel(c.code).toLowerCase()}`);
    }
    byHour.set(t, h);
  }
  // Valid first, then the refusals in the order of their codes.
  const totals = [...usage.totals].sort((a, b) => (a.code === VerifyCode.VALID ? -1 : b.code === VerifyCode.VALID ? 1 : a.code - b.code));
  const max = Math.max(1, ...[...byHour.values()].map((h) => h.total));
  const total = Number(usage.total);
  const summary =
    total === 0
      ? 'No verifications in the last 24 hours.'
      : `${total} verification${total === 1 ? '' : 's'} in the last 24 hours: ` +
        totals.map((c) => `${Number(c.count)} ${codeLabel(c.code).toLowerCase()}`).join(', ') +
        '.';

  return (
    <div className="kw-usage">
      <div className="kw-usage-head">
        <span className="kw-usage-title">Last 24 hours</span>
        <span className="kw-usage-total">
          {total.toLocaleString()} {total === 1 ? 'request' : 'requests'}
        </span>
      </div>
      <div className="kw-usage-bars" role="img" aria-label={summary}>
        {hours.map((t) => {
          const h = byHour.get(t);
          return (
            <div className="kw-usage-bar" key={t} title={h ? `${formatTime(new Date(t))}: ${h.parts.join(', ')}` : `${formatTime(new Date(t))}: none`}>
              {h &&
                TONES.map((k) => (h[k] > 0 ? <span key={k} className={`kw-usage-seg kw-usage-${k}`} style={{ height: `${(h[k] / max) * 100}%` }} /> : null))}
            </div>
          );
        })}
      </div>
      <div className="kw-usage-axis" aria-hidden="true">
        <span>{formatTime(new Date(hours[0]!))}</span>
        <span>Now</span>
      </div>
      {total === 0 ? (
        <p className="kw-hint">No requests in the last 24 hours.</p>
      ) : (
        <ul className="kw-usage-legend">
          {totals.map((c) => (
            <li key={c.code}>
              <span className={`kw-dot kw-usage-${tone(c.code)}`} aria-hidden="true" />
              {codeLabel(c.code)} <strong>{Number(c.count).toLocaleString()}</strong>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
