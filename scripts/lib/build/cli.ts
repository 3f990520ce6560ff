/**
 * The entry `scripts/build` compiles into `dist/msgsys`: the msgsys command with the actors of
 * `actors/` built in, so `msgsys worker` and `msgsys dev` run them with no source tree around.
 */
import app from "../../../actors/index.ts"
import * as Cli from "../../../src/cli/main.ts"

Cli.run({ bundled: app })
