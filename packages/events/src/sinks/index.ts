export {
  SinkRunner,
  type BatchSink,
  type SinkRunnerOptions,
  type SinkRunnerStats,
} from './sink-runner.js';
