// Hooks for Kiln's own tests, kept out of the API (kiln.js and its kiln.d.ts): they reach the
// worker's test-only methods by name. Used by tests/e2e/device-loss.test.mjs and the tests that
// compare what the page shows with what the worker trains on (workerState in harness.mjs).

/**
 * WebGPU buffers created and destroyed so far, and the bytes of the live ones (zeros on the CPU).
 * @param {import('./kiln.js').Kiln} kiln
 * @returns {Promise<{created: number, destroyed: number, bytes: number}>}
 */
export const gpuBuffers = (kiln) => /** @type {any} */ (kiln).call('gpuBuffers');

/**
 * Destroy the GPU device as a driver reset would (to test device loss).
 * @param {import('./kiln.js').Kiln} kiln
 * @returns {Promise<number>} how many devices were destroyed
 */
export const loseDevice = (kiln) => /** @type {any} */ (kiln).call('loseDevice');

/**
 * What the next fit trains on: the worker's dataset (classes, split sizes, the options it was
 * built with) and model (classes, settings); null where there is none.
 * @param {import('./kiln.js').Kiln} kiln
 * @returns {Promise<{dataset: {classes: string[], nTrain: number, nValid: number, options: object} | null, learner: {classes: string[], options: object} | null}>}
 */
export const trainingState = (kiln) => /** @type {any} */ (kiln).call('trainingState');
