package dev.starling

/**
 * Placeholder for the hand-written Kotlin API; to be replaced by the real
 * idiomatic wrapper over the uniffi bindings in `dev.starling.internal`.
 */
object Placeholder {
    /** Base name of the Rust cdylib: `libstarling_ffi.so` on Linux/Android. */
    const val NATIVE_LIBRARY: String = "starling_ffi"

    /** Package the uniffi bindings are generated into (see consumer-rules.pro). */
    const val BINDINGS_PACKAGE: String = "dev.starling.internal"

    fun describe(): String = "Starling ($BINDINGS_PACKAGE via lib$NATIVE_LIBRARY)"
}
