import * as PipelineStore from "../../../src/pipeline/PipelineStore.ts"
import { storeConformance } from "./storeConformance.ts"

storeConformance("memory", () => PipelineStore.layerMemory())
