import { unwatchFile, watchFile } from "node:fs";
import { type CertificatePair, loadTlsFiles } from "../../config/tls-files.js";

export type { CertificatePair } from "../../config/tls-files.js";

/** How often the certificate files are looked at; renewals are rare, and a stat a second is free. */
const POLL_MS = 1_000;
/** A renewal writes two files; wait for both before loading them. */
const SETTLE_MS = 300;

/**
 * Watches `tls-cert` and `tls-key` and hands a new, valid pair to `apply` when they change on
 * disk. Polling (fs.watchFile) follows symlinks and survives the file being replaced by a rename,
 * which is how certbot and most tools renew. A pair that does not load is reported and the
 * listener keeps the certificate it has.
 */
export class CertificateWatcher {
  private files: { certFile: string; keyFile: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly listener = () => this.schedule();

  constructor(
    private readonly apply: (pair: CertificatePair) => void,
    private readonly report: (
      error: string | undefined,
      files: { certFile: string; keyFile: string },
    ) => void,
    private readonly pollMs = POLL_MS,
  ) {}

  watch(files: { certFile: string; keyFile: string } | undefined): void {
    if (this.files && files && this.files.certFile === files.certFile && this.files.keyFile === files.keyFile)
      return;
    this.stop();
    this.files = files;
    if (!files) return;
    watchFile(files.certFile, { interval: this.pollMs, persistent: false }, this.listener);
    watchFile(files.keyFile, { interval: this.pollMs, persistent: false }, this.listener);
  }

  /** Loads the files now (SIGHUP, or a change seen on disk). */
  reload(): void {
    const files = this.files;
    if (!files) return;
    try {
      this.apply(loadTlsFiles(files));
      this.report(undefined, files);
    } catch (error) {
      this.report((error as Error).message, files);
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.files) return;
    unwatchFile(this.files.certFile, this.listener);
    unwatchFile(this.files.keyFile, this.listener);
    this.files = undefined;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reload();
    }, SETTLE_MS);
    this.timer.unref();
  }
}
