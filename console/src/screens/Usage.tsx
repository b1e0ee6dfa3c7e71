// Hourly verification counts by outcome, as stacked bars.
import { lazy, Suspense, useState, type ReactNode } from 'react';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Report } from './UsageChart.js';
import { useSession } from '../session.js';
import { useLoad } from '../hooks.js';
import { Button, Card, Empty, ErrorBanner, Field, Loading } from '../components/ui.js';

// The chart library is loaded only when a chart is shown.
const UsageChart = lazy(() => import('./UsageChart.js'));

const HOUR = 3_600_000;
const RANGES = [
  { id: '24h', label: 'Last 24 hours', hours: 24 },
  { id: '7d', label: 'Last 7 days', hours: 7 * 24 },
  { id: '30d', label: 'Last 30 days', hours: 30 * 24 },
];

function useRange() {
  const [range, setRange] = useState(RANGES[0]!);
  const select = (
    <Field label="Range" className="field-inline">
      <select className="input input-sm" value={range.id} onChange={(e) => setRange(RANGES.find((r) => r.id === e.target.value)!)}>
        {RANGES.map((r) => (
          <option key={r.id} value={r.id}>
            {r.label}
          </option>
        ))}
      </select>
    </Field>
  );
  const start = () => timestampFromDate(new Date(Math.floor(Date.now() / HOUR) * HOUR - (range.hours - 1) * HOUR));
  return { range, select, start };
}

export function KeyUsage({ keyId }: { keyId: string }) {
  const { api } = useSession();
  const { range, select, start } = useRange();
  const res = useLoad(() => api.usage.getKeyUsage({ keyId, startTime: start() }), [keyId, range.id]);
  return <UsageCard title="Usage" report={res.data} error={res.error} loading={res.loading} reload={res.reload} hours={range.hours} select={select} />;
}

export function WorkspaceUsage({ workspaceId }: { workspaceId: string }) {
  const { api } = useSession();
  const { range, select, start } = useRange();
  const res = useLoad(() => api.usage.getWorkspaceUsage({ workspaceId, startTime: start() }), [workspaceId, range.id]);
  return (
    <UsageCard
      title="Verifications in this workspace"
      report={res.data}
      error={res.error}
      loading={res.loading}
      reload={res.reload}
      hours={range.hours}
      select={select}
    />
  );
}

function UsageCard(props: { title: string; report: Report | undefined; error: unknown; loading: boolean; reload(): void; hours: number; select: ReactNode }) {
  const { report } = props;
  return (
    <Card
      title={props.title}
      actions={
        <>
          {props.select}
          <Button small onClick={props.reload} busy={props.loading && !!report}>
            Refresh
          </Button>
        </>
      }
    >
      <ErrorBanner error={props.error} title="Could not load usage" />
      {!report ? (
        props.loading ? (
          <Loading />
        ) : null
      ) : report.total === 0n ? (
        <Empty title="No verifications in this period">Counts appear a few seconds after gateways call VerifyKey.</Empty>
      ) : (
        <Suspense fallback={<Loading label="Loading chart…" />}>
          <UsageChart report={report} hours={props.hours} />
        </Suspense>
      )}
    </Card>
  );
}
