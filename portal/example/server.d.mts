import type { Server } from 'node:http';

export interface HostConfig {
  keywardUrl: string;
  sdkKey: string;
  workspaceId: string;
  customerId: string;
  allowedGrants?: string[];
  ttlSeconds?: number;
}

export function createPortalSession(c: HostConfig): Promise<{ token: string; expireTime: string }>;
export function createHostServer(config: () => HostConfig): Server;
