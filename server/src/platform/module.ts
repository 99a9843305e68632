/**
 * What a module gives the process that hosts it. Modules are wired explicitly in
 * `entrypoints/hub.ts`: each gets what it needs as arguments, nothing is looked up by name.
 */
import type { HttpApp } from './http/server.js';

export interface PlexusModule {
  /** Folder name under modules/; also names its audit events and its routes' module. */
  name: string;
  /** The process role that runs this module (see DESIGN.md "Processes"). */
  role: string;
  /** Registers the module's routes (only on processes that serve HTTP). */
  routes?(app: HttpApp): Promise<void>;
  /** Starts background work (bus consumers, timers). Called after every module's routes exist. */
  start?(): Promise<void>;
  /** Stops taking new work and drains what is in flight. Called in reverse start order. */
  stop?(): Promise<void>;
}
