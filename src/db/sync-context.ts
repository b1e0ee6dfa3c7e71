/**
 * What MikroORM needs of an AsyncLocalStorage, without async hooks: a value
 * visible for the synchronous extent of run(). The same as MikroORM's own
 * fallback for runtimes without AsyncLocalStorage; see load-orm.ts.
 */
export class SyncContext<T> {
  #store: T | undefined;

  getStore(): T | undefined {
    return this.#store;
  }

  enterWith(value: T): void {
    this.#store = value;
  }

  run<R>(value: T, callback: (...args: unknown[]) => R, ...args: unknown[]): R {
    const previous = this.#store;
    this.#store = value;
    try {
      return callback(...args);
    } finally {
      this.#store = previous;
    }
  }
}
