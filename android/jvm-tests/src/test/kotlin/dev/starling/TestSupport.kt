package dev.starling

import java.io.File

/** A config for a store under [dir] that talks to [server] (or to no server) with [apiKey]. */
fun testConfig(dir: File, server: LoopbackServer? = null, apiKey: String = LoopbackServer.API_KEY) =
    StarlingConfig(
        dataDir = File(dir, "device"),
        serverUrl = server?.url,
        apiKey = apiKey,
        // Short waits, so that a test's second sync is not held back by a long backoff.
        backoffInitialMs = 1_000,
    )

/** Opens an instance for [config] with consent already granted, as most tests want. */
fun openConsented(config: StarlingConfig): Starling = Starling.open(config).apply { consent = true }
