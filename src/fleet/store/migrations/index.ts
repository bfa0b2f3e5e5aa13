// Every migration, in order. A new one is a new numbered file added here, never an edit of an
// applied one (the runner records which versions a database has).
import * as m0001 from "./0001-initial.js";
import * as m0002 from "./0002-rollout-runner.js";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [m0001, m0002];
