/**
 * The headers a task message carries beyond the envelope's.
 * @since 0.1.0
 */

/** Epoch ms before which a delayed task must not run. @category constants @since 0.1.0 */
export const RunAt = "Msgsys-Run-At"
/** The priority a delayed task is released with. @category constants @since 0.1.0 */
export const Priority = "Msgsys-Priority"
/** An explicit idempotency key given at enqueue. @category constants @since 0.1.0 */
export const IdempotencyKey = "Msgsys-Idempotency-Key"
/** `off`: the worker does not store this task's final status and output (`result: false`). @category constants @since 0.1.0 */
export const Result = "Msgsys-Result"
/** A pipeline step: its pipeline, its place and the plan (see `PipelineHeader`). @category constants @since 0.1.0 */
export const Pipeline = "Msgsys-Pipeline"
