package dev.starling

import com.sun.jna.NativeLibrary
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File

/** The harness's own wiring: a failure here explains the failures elsewhere. */
class HarnessTest {
    @Test
    fun `JNA loads the native library from starling lib dir`() {
        val dir = System.getProperty("jna.library.path")
        assertTrue(!dir.isNullOrBlank() && File(dir).isAbsolute, "jna.library.path must be an absolute dir, was $dir")
        val expected = File(dir, System.mapLibraryName("starling_ffi"))
        assertTrue(expected.isFile, "not built: $expected (run `make bindings`)")
        assertEquals(expected.canonicalFile, NativeLibrary.getInstance("starling_ffi").file.canonicalFile)
    }

    @Test
    fun `the server binary is where the tests look for it`() {
        assertTrue(LoopbackServer.binary().isFile)
    }
}
