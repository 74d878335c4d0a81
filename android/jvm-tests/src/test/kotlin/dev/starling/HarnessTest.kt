package dev.starling

import android.app.Application
import com.sun.jna.Library
import com.sun.jna.Native
import com.sun.jna.NativeLibrary
import dev.starling.android.StarlingLifecycle
import kotlinx.coroutines.test.runTest
import kotlinx.coroutines.withContext
import kotlinx.coroutines.Dispatchers
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test
import java.io.File

/** Smoke tests for the harness itself: compilation roots, JNA, surefire wiring. */
class HarnessTest {

    /** Minimal libc binding, proving JNA can load and call a native library. */
    private interface LibC : Library {
        fun getpid(): Int
    }

    @Test
    fun `placeholder API is compiled from the starling module`() {
        assertEquals("starling_ffi", Placeholder.NATIVE_LIBRARY)
        assertEquals("libstarling_ffi.so", System.mapLibraryName(Placeholder.NATIVE_LIBRARY))
        assertEquals("Starling (dev.starling.internal via libstarling_ffi)", Placeholder.describe())
    }

    @Test
    fun `JNA loads libc and calls getpid`() {
        val libc = Native.load("c", LibC::class.java)
        assertEquals(ProcessHandle.current().pid(), libc.getpid().toLong())
    }

    @Test
    fun `surefire passes jna library path from starling lib dir`() {
        val dir = System.getProperty("jna.library.path")
        assertTrue(!dir.isNullOrBlank(), "jna.library.path must be set by surefire")
        assertTrue(File(dir!!).isAbsolute, "jna.library.path should be absolute, was $dir")
    }

    @Test
    fun `Rust cdylib loads through JNA once it has been built`() {
        val lib = File(System.getProperty("jna.library.path"), System.mapLibraryName(Placeholder.NATIVE_LIBRARY))
        assumeTrue(lib.isFile, "not built yet: $lib")
        val native = NativeLibrary.getInstance(Placeholder.NATIVE_LIBRARY)
        assertEquals(lib.canonicalFile, native.file.canonicalFile)
    }

    @Test
    fun `android glue compiles against android-all and implements the callbacks`() {
        assertTrue(Application.ActivityLifecycleCallbacks::class.java
            .isAssignableFrom(StarlingLifecycle::class.java))
        val lifecycle = StarlingLifecycle()
        assertFalse(lifecycle.isForeground)
        assertEquals(0x5741, StarlingLifecycle.SYNC_JOB_ID)
    }

    @Test
    fun `coroutines are on the classpath`() = runTest {
        assertEquals(42, withContext(Dispatchers.Default) { 6 * 7 })
    }
}
