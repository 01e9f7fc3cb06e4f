// A queue that a producer pushes to while a promise runs, read as an async iterator: how
// predictMany hands the worker's batches to a `for await` loop as they arrive.

/** @template T */
export class Queue {
  /** @param {(value: T) => void} [onTake] called as each value is taken */
  constructor(onTake) {
    /** @private @type {T[]} */ this.items = [];
    /** @private @type {(() => void) | null} */ this.wake = null;
    /** @private */ this.finished = false;
    /** @private @type {unknown} */ this.failure = null;
    /** @private */ this.onTake = onTake;
  }

  /** @param {T} value */
  push(value) {
    this.items.push(value);
    this.wake?.();
  }

  /** Ends the queue when `work` settles (a rejection is thrown to the reader once the values
   * before it are taken). @param {Promise<unknown>} work @returns {Promise<void>} */
  until(work) {
    return work.then(() => { this.finished = true; }, (e) => { this.failure = e; }).finally(() => this.wake?.());
  }

  /** Whether `until`'s work has settled. */
  get settled() { return this.finished || this.failure !== null; }

  /** @returns {AsyncGenerator<T, void, undefined>} */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      while (this.items.length) {
        const v = /** @type {T} */ (this.items.shift());
        this.onTake?.(v);
        yield v;
      }
      if (this.failure !== null) throw this.failure;
      if (this.finished) return;
      await new Promise((r) => { this.wake = () => r(undefined); });
      this.wake = null;
    }
  }
}
