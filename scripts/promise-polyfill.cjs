// Loaded with `--require` (through NODE_OPTIONS) before js-ipfs starts: the versions npm resolves today for
// js-ipfs 0.66's locks and queues (mortice, it-queue, abort-error) call Promise.withResolvers, which Node
// ships only from 22 on. A no-op where Node already has it.
"use strict";
if (typeof Promise.withResolvers !== "function") {
  Object.defineProperty(Promise, "withResolvers", {
    configurable: true,
    writable: true,
    value: function withResolvers() {
      let resolve;
      let reject;
      const promise = new this((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}
