import type { PackagerEvent } from '../packager/chunker.ts';
import type { ManifestBuilder } from '../push/push-types.ts';

/** Where packager events and manifests go: a directory, the built-in origin's store, or an origin. */
export interface Output {
  readonly name: string;
  handle(event: PackagerEvent): void;
  /** What the manifest says; the output builds it (with its own view) when it writes it. */
  publishManifest(build: ManifestBuilder): void;
  /** Delivers everything handed over so far (as far as it can) and closes. */
  flush(): Promise<void>;
  readonly failures: number;
  /** Set when the output gave up for good. */
  readonly fatal?: Error | undefined;
  /** Media waiting for an origin's acknowledgement (push outputs). */
  readonly backlogBytes?: number;
  /** Memory holding that media now, and the most it ever held (push outputs): the push budget bounds both. */
  readonly heldBytes?: number;
  readonly peakHeldBytes?: number;
  /** Stops (or resumes) sending a rendition from the next segment boundary (push outputs); returns that boundary. */
  shed?(track: string, on: boolean): bigint | undefined;
}

/**
 * Every output of a run as one: the live session hands each event and manifest to this, which
 * passes it to each output (as shaka-packager's CombinedMuxerListener fans a muxer's events out to
 * its MPD and HLS notifiers), and answers for them as a whole.
 */
export class OutputSet {
  readonly outputs: readonly Output[];

  constructor(outputs: readonly Output[]) {
    this.outputs = outputs;
  }

  handle(event: PackagerEvent): void {
    for (const output of this.outputs) output.handle(event);
  }

  publishManifest(build: ManifestBuilder): void {
    for (const output of this.outputs) output.publishManifest(build);
  }

  async flush(): Promise<void> {
    await Promise.all(this.outputs.map((o) => o.flush()));
  }

  /** Every output gave up for good: nothing the run makes can reach anyone. */
  get allFatal(): boolean {
    return this.outputs.every((o) => o.fatal);
  }

  get names(): string[] {
    return this.outputs.map((o) => o.name);
  }

  /** The outputs that failed to deliver something. */
  get failed(): Output[] {
    return this.outputs.filter((o) => o.failures);
  }

  /** What an output holds for its origin, by name (zero for a local output). */
  heldBy(name: string): { backlogBytes: number; heldBytes: number; peakHeldBytes: number } {
    const output = this.outputs.find((o) => o.name === name);
    return {
      backlogBytes: output?.backlogBytes ?? 0,
      heldBytes: output?.heldBytes ?? 0,
      peakHeldBytes: output?.peakHeldBytes ?? 0,
    };
  }
}
