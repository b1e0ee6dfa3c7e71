import { useRoute } from '../router.js';
import { Empty } from '../components/ui.js';
import { Workspaces } from './Workspaces.js';
import { WorkspacePage } from './WorkspacePage.js';
import { KeyPage } from './KeyPage.js';
import { AuditLog } from './AuditLog.js';
import { SdkKeys } from './SdkKeys.js';

export function Routes() {
  const [section, id, tab] = useRoute();
  switch (section ?? 'workspaces') {
    case 'workspaces':
      return id ? <WorkspacePage id={id} tab={tab ?? 'keys'} /> : <Workspaces />;
    case 'keys':
      return id ? <KeyPage id={id} /> : <Workspaces />;
    case 'audit':
      return <AuditLog />;
    case 'sdk-keys':
      return <SdkKeys />;
    default:
      return <Empty title="Page not found">There is nothing at this address.</Empty>;
  }
}
