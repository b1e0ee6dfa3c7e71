import { Migration } from '@mikro-orm/migrations';

/**
 * Before DeleteWorkspace locked its workspace, a key created while the
 * workspace was being deleted could commit after the delete's revoke and stay
 * unrevoked in a deleted workspace. Revoke any such key, as of the delete.
 */
export class Migration0005RevokeOrphanedKeys extends Migration {
  override name = '0005_revoke_orphaned_keys';

  override up(): void {
    this.addSql(`
      update api_keys k
         set revoke_time = w.delete_time, update_time = now()
        from workspaces w
       where w.id = k.workspace_id and w.delete_time is not null and k.revoke_time is null`);
  }
}
