// The types of Kiln's JS API (kiln.js re-exports them, so they are in kiln.d.ts): JSDoc
// typedefs only, in a module of their own so that worker-link.js can use them too (within
// `tsc`'s program an import of './kiln.js' resolves to the generated kiln.d.ts).

/**
 * @typedef {{name: string, train: number, valid: number, examples: string[]}} ClassCount
 * @typedef {{name: string, reason: {kind: string, detail?: string}}} Skipped
 * @typedef {{classes: ClassCount[], nTrain: number, nValid: number, labelRule: string, split: string, skipped: Skipped[], warnings?: string[], changes?: number, changesDropped?: string | null, multiLabel?: boolean, unlabelled?: number}} Summary
 * @typedef {{file: string, oldLabel: string, newLabel: string | null}} Change
 * @typedef {{train: number, valid: number, newClasses: string[], skipped: Skipped[]}} Added
 * @typedef {{added: Added, summary: Summary}} AddResult
 * @typedef {{file: string, label: string, split: 'train'|'valid'}} DatasetFile
 * @typedef {{changes: Change[]} | {add: {name: string, blob: Blob}[]} | {rename: [string, string]} | {removeClass: string}} Edit
 * @typedef {{file: string, label: string, predicted: string, probLabel: number, loss: number}} CleanerRow
 * @typedef {{split: 'train'|'valid', classes: string[], rows: CleanerRow[]}} CleanerResult
 * @typedef {{labelRegex?: string, validPct?: number, seed?: number, presize?: number, maxPixels?: number, multiLabel?: boolean, labelsCsv?: string | null}} DatasetOptions
 * @typedef {{arch?: 'efficientnet_lite0'|'resnet18'|'resnet34'|'resnet50'|'resnet101'|'resnet152'|'tiny', pretrained?: boolean, size?: number, batchSize?: number, microBatch?: number, seed?: number, doFlip?: boolean, widths?: number[], hidden?: number, linFtrs?: number[], fp16?: boolean, multiLabel?: boolean, thresh?: number, lossFunc?: 'CrossEntropyLossFlat'|'LabelSmoothingCrossEntropy'|'BCEWithLogitsLossFlat', ps?: number, concatPool?: boolean, firstBn?: boolean, bnFinal?: boolean, linFirst?: boolean, wd?: number, wdBnBias?: boolean, trainBn?: boolean, moms?: number[]}} LearnerOptions
 * @typedef {LearnerOptions & {presize: number}} ModelOptions
 * @typedef {{arch: string, imagenetClasses: number | null, name: string}} ImportedWeights
 * @typedef {'fit'|'frozen'|'unfrozen'|'lr_find'} Phase
 * @typedef {{phase: Phase, epoch: number, iter: number, totalIters: number, loss: number, smoothLoss: number, lrs: number[], mom: number, elapsedS: number}} BatchEvent
 * @typedef {{phase: Phase, epoch: number, number: number, trainLoss: number, validLoss: number, errorRate: number, accuracy: number, seconds: number}} EpochEvent
 * @typedef {{lrMax?: number | [number] | [number, number], pctStart?: number, div?: number}} FitOneCycleOptions
 * @typedef {{baseLr?: number, freezeEpochs?: number, lrMult?: number, pctStart?: number, div?: number}} FineTuneOptions
 * @typedef {{batchSize: number, freezeEpochs: number, epochs: number, steps: number, fastaiSteps: number, why: string}} SmallDataProposal
 * @typedef {{startLr?: number, endLr?: number, numIt?: number, stopDiv?: boolean}} LrFindOptions
 * @typedef {{lr: number, point: [number, number]}} Suggestion
 * @typedef {{lrs: number[], losses: number[], suggestions: {minimum: Suggestion, steep: Suggestion, valley: Suggestion, slide: Suggestion} | null, cancelled: boolean}} LrFindResult
 * @typedef {{actual: string, predicted: string, count: number}} Confusion
 * @typedef {{class: string, tp: number, fp: number, fn: number, tn: number}} ClassScore
 * @typedef {{index: number, name: string, predicted: string, actual: string, loss: number, probActual: number}} TopLoss
 * @typedef {{classes: string[], confusion: number[][], mostConfused: Confusion[], topLosses: TopLoss[], nValid: number, topLossImages: ImageData[], perClass: ClassScore[], thresh: number | null, multiLabel: boolean}} InterpretResult
 * @typedef {{epochs: EpochEvent[], cancelled: boolean}} FitReport
 * @typedef {{label: string, index: number, probs: number[], labels: string[]}} Prediction
 * @typedef {{probs: number[][], targets: number[] | number[][], losses: number[], thresh: number | null}} Preds
 * @typedef {{name: string, file: Blob, label: string, index: number, probs: number[]}} PhotoPrediction
 * @typedef {{name: string, file: Blob, error: string}} PhotoError
 * @typedef {PhotoPrediction | PhotoError} PhotoResult
 * @typedef {{done: number, total: number}} PredictProgress
 * @typedef {{onProgress?: (p: PredictProgress) => void, signal?: AbortSignal, batchSize?: number}} PredictManyOptions
 * @typedef {{onBatch?: (e: BatchEvent) => void, onEpoch?: (e: EpochEvent) => void, onSkipped?: (e: Skipped) => void}} FitCallbacks
 * @typedef {{firstMs: number, stepMs: number | null}} ProbeTiming
 * @typedef {{firstMs: number | null, stepMs: number | null, timedOut?: boolean, limitMs?: number}} GpuProbeTiming
 * @typedef {{chosen: 'webgpu' | 'cpu', reason: string, cpu: ProbeTiming | null, webgpu: GpuProbeTiming | null, cached: boolean, probeMs: number, arch: string, size: number}} DeviceChoice
 * @typedef {{arch?: LearnerOptions['arch'], size?: number}} ProbeModel
 * @typedef {{backend: string, adapter: string, notices: string[], threads: number, simd: 'relaxed' | 'simd128' | null, fp16Unavailable: string | null, device: DeviceChoice | null}} BackendInfo
 * @typedef {File | {name: string, blob: Blob}} InputFile
 * @typedef {{changes: Change[]} | {add: string[]} | {rename: [string, string]} | {removeClass: string}} ProjectEdit
 * @typedef {{options: DatasetOptions & {labelRegex?: string | null}, files: string[], edits: ProjectEdit[]}} ProjectRecipe
 * @typedef {{kind: 'kiln-project', format: number, dataset: ProjectRecipe, model: boolean, settings: Record<string, any>, charts: any, savedBy: string}} ProjectManifest
 * @typedef {{settings?: Record<string, string | number | boolean>, charts?: unknown, model?: boolean | 'snapshot'}} SaveProjectOptions
 * @typedef {{onProgress?: (p: {done: number, total: number}) => void}} OpenProjectOptions
 * @typedef {{summary: Summary, settings: Record<string, any>, charts: any, model: {classes: string[], options: ModelOptions | null} | null, history: EpochEvent[], files: File[], added: File[], options: DatasetOptions, manifest: ProjectManifest}} OpenedProject
 */

export {};
