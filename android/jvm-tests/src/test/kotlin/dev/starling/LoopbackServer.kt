package dev.starling

import org.json.JSONObject
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Duration
import java.util.concurrent.CompletableFuture
import java.util.concurrent.TimeUnit

/**
 * The real `starling-server` binary, started as a child process on a free loopback port with one
 * API key ([APP]:[API_KEY]), and killed by [close].
 *
 * The binary comes from the `starling.server.bin` system property (Surefire sets it to
 * `${starling.lib.dir}/starling-server`); `make bindings` builds it.
 */
class LoopbackServer private constructor(
    private val process: Process,
    /** Base URL, such as `http://127.0.0.1:40123`. */
    val url: String,
    private val log: StringBuffer,
) : AutoCloseable {

    /** `GET /v1/stats` as JSON. */
    fun stats(): JSONObject = JSONObject(get("/v1/stats").body())

    /** Events stored under [name] according to `/v1/stats`, or 0. */
    fun eventsNamed(name: String): Long = stats().getJSONObject("events_by_name").optLong(name, 0)

    private fun get(path: String): HttpResponse<String> {
        val request = HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofSeconds(5)).build()
        return http.send(request, HttpResponse.BodyHandlers.ofString())
    }

    /** Everything the server wrote to stderr so far, for failure messages. */
    fun log(): String = log.toString()

    override fun close() {
        process.destroy()
        if (!process.waitFor(5, TimeUnit.SECONDS)) process.destroyForcibly().waitFor()
    }

    companion object {
        const val APP = "test-app"
        const val API_KEY = "sk_test"

        private val http: HttpClient = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()
        private val LISTENING = Regex("""listening on (http://[^\s,]+)""")

        /** The server binary, checked to exist so a missing build fails with a clear message. */
        fun binary(): File {
            val path = System.getProperty("starling.server.bin")
                ?: error("system property starling.server.bin is not set (see android/jvm-tests/pom.xml)")
            return File(path).also { check(it.canExecute()) { "no server binary at $it; run `make bindings` first" } }
        }

        /**
         * Starts a server keeping its database under [dir] and waits until `/healthz` answers.
         * With [deviceConfig] (the operator's JSON), it serves those signal and bandit
         * definitions at `GET /v1/config`. [extraArgs] go on the server's command line.
         */
        fun start(
            dir: File,
            deviceConfig: String? = null,
            extraArgs: List<String> = emptyList(),
        ): LoopbackServer {
            val keys = File(dir, "api-keys").apply { writeText("$APP:$API_KEY\n") }
            val arguments = mutableListOf(
                binary().path,
                "--listen", "127.0.0.1:0",
                "--data-dir", File(dir, "server-data").path,
                "--api-key-file", keys.path,
            )
            if (deviceConfig != null) {
                val file = File(dir, "device-config.json").apply { writeText(deviceConfig) }
                arguments += listOf("--device-config", file.path)
            }
            arguments += extraArgs
            val process = ProcessBuilder(arguments).apply {
                environment()["RUST_LOG"] = "info"
                redirectOutput(ProcessBuilder.Redirect.DISCARD)
            }.start()

            // Drain stderr for the whole life of the process (a full pipe would block the
            // server), picking the bound address out of the start-up line.
            val log = StringBuffer()
            val address = CompletableFuture<String>()
            Thread({
                process.errorStream.bufferedReader().forEachLine { line ->
                    log.append(line).append('\n')
                    LISTENING.find(line)?.let { address.complete(it.groupValues[1]) }
                }
                address.completeExceptionally(IllegalStateException("server exited before listening:\n$log"))
            }, "starling-server-stderr").apply { isDaemon = true }.start()

            try {
                val server = LoopbackServer(process, address.get(10, TimeUnit.SECONDS), log)
                server.awaitHealthy()
                return server
            } catch (e: Exception) {
                process.destroyForcibly()
                throw IllegalStateException("starling-server did not start:\n$log", e)
            }
        }
    }

    private fun awaitHealthy() {
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10)
        while (true) {
            val status = runCatching { get("/healthz").statusCode() }.getOrNull()
            if (status == 200) return
            check(System.nanoTime() < deadline) { "/healthz answered $status" }
            Thread.sleep(20)
        }
    }
}
