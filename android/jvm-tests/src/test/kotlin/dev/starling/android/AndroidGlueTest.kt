package dev.starling.android

import android.app.Activity
import android.app.Application
import android.app.job.JobService
import android.net.NetworkCapabilities
import android.util.Log
import dev.starling.LogLevel
import dev.starling.LoopbackServer
import dev.starling.Starling
import dev.starling.openConsented
import dev.starling.testConfig
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import org.w3c.dom.Element
import java.io.File
import javax.xml.parsers.DocumentBuilderFactory

/**
 * The Android glue on the plain JVM, against Robolectric's android-all classes (real framework
 * code, but no running system). What needs a live Context (system services, registering
 * callbacks, the job actually running) is only compiled here; what is plain logic runs.
 *
 * Not run here: StarlingSyncJobService.buildJob and sameSchedule, because JobInfo.Builder asks
 * the OS for the caller's uid (Process.myUid, a native call) as soon as a network type is set.
 */
class AndroidGlueTest {
    @TempDir
    lateinit var dir: File

    /** Records the lifecycle's reports in order. */
    private class Transitions {
        val seen = mutableListOf<String>()
        val lifecycle = StarlingLifecycle(
            onForeground = { seen += "foreground" },
            onBackground = { seen += "background" },
        )
    }

    @Test
    fun `the lifecycle reports the first start and the last stop only`() {
        val t = Transitions()
        assertFalse(t.lifecycle.isForeground)

        t.lifecycle.activityStarted() // A
        t.lifecycle.activityStarted() // B on top of A
        t.lifecycle.activityStopped(changingConfigurations = false) // A, hidden by B
        assertEquals(listOf("foreground"), t.seen)
        assertTrue(t.lifecycle.isForeground)

        t.lifecycle.activityStopped(changingConfigurations = false) // B: home button
        assertEquals(listOf("foreground", "background"), t.seen)
        assertFalse(t.lifecycle.isForeground)

        t.lifecycle.activityStarted() // back again
        assertEquals(listOf("foreground", "background", "foreground"), t.seen)
    }

    @Test
    fun `a configuration change is neither background nor foreground`() {
        val t = Transitions()
        t.lifecycle.activityStarted()
        t.lifecycle.activityStopped(changingConfigurations = true) // rotation: A stops ...
        t.lifecycle.activityStarted() // ... and its successor starts
        assertEquals(listOf("foreground"), t.seen)
        assertTrue(t.lifecycle.isForeground)

        t.lifecycle.activityStopped(changingConfigurations = false)
        assertEquals(listOf("foreground", "background"), t.seen)
    }

    @Test
    fun `a stop without a counted start still means background`() {
        // install() after the first activity had started: its start was never counted.
        val t = Transitions()
        t.lifecycle.activityStopped(changingConfigurations = false)
        assertEquals(listOf("background"), t.seen)
        assertFalse(t.lifecycle.isForeground)
    }

    @Test
    fun `the framework callbacks drive the same counting`() {
        // An Activity cannot be constructed off-device (its constructor needs a Looper), so this
        // one is allocated without running a constructor; the callbacks only read
        // isChangingConfigurations, which is then false.
        val unsafe = Class.forName("sun.misc.Unsafe").getDeclaredField("theUnsafe")
            .apply { isAccessible = true }
            .get(null)
        val activity = unsafe.javaClass.getMethod("allocateInstance", Class::class.java)
            .invoke(unsafe, Activity::class.java) as Activity
        val t = Transitions()
        val callbacks: Application.ActivityLifecycleCallbacks = t.lifecycle

        callbacks.onActivityCreated(activity, null)
        callbacks.onActivityStarted(activity)
        callbacks.onActivityResumed(activity)
        callbacks.onActivityPaused(activity)
        callbacks.onActivityStopped(activity)
        callbacks.onActivityDestroyed(activity)
        assertEquals(listOf("foreground", "background"), t.seen)
    }

    @Test
    fun `device conditions require a validated network to count as online`() {
        fun caps(vararg capabilities: Int) = NetworkCapabilities.Builder()
            .apply { capabilities.forEach { addCapability(it) } }
            .build()
        val internet = NetworkCapabilities.NET_CAPABILITY_INTERNET
        val validated = NetworkCapabilities.NET_CAPABILITY_VALIDATED
        val notMetered = NetworkCapabilities.NET_CAPABILITY_NOT_METERED

        assertEquals(false to false, DeviceConditions.network(null))
        assertEquals(false to false, DeviceConditions.network(caps(internet, notMetered)))
        assertEquals(true to false, DeviceConditions.network(caps(internet, validated)))
        assertEquals(true to true, DeviceConditions.network(caps(internet, validated, notMetered)))
    }

    @Test
    fun `the sync job asks for a retry only when a later attempt can succeed`() {
        LoopbackServer.start(dir).use { server ->
            openConsented(testConfig(File(dir, "good"), server)).use { starling ->
                starling.track("job_event")
                val outcome = StarlingSyncJobService.syncForJob(starling)
                assertFalse(outcome.reschedule, outcome.message)
                assertEquals(1, server.eventsNamed("job_event"))
            }
            openConsented(testConfig(File(dir, "bad-key"), server, apiKey = "sk_wrong")).use { starling ->
                starling.track("job_event")
                val outcome = StarlingSyncJobService.syncForJob(starling)
                assertTrue(outcome.reschedule, outcome.message)
                assertTrue(outcome.message.contains("401"), outcome.message)
            }
            Starling.open(testConfig(File(dir, "no-consent"), server)).use { starling ->
                assertFalse(StarlingSyncJobService.syncForJob(starling).reschedule)
            }
            val closed = Starling.open(testConfig(File(dir, "closed"), server)).apply { close() }
            assertFalse(StarlingSyncJobService.syncForJob(closed).reschedule)
        }
    }

    @Test
    fun `the glue classes load and nothing is installed by default`() {
        assertTrue(JobService::class.java.isAssignableFrom(StarlingSyncJobService::class.java))
        assertNull(StarlingAndroid.instance)
        assertFalse(StarlingAndroid.isForeground)
        val e = assertThrows<IllegalStateException> { StarlingAndroid.requireInstance() }
        assertTrue(e.message!!.contains("install"), e.message)
        StarlingAndroid.uninstall() // a no-op when nothing is installed
    }

    @Test
    fun `native log levels map to the matching Logcat priorities`() {
        assertEquals(
            listOf(Log.ERROR, Log.WARN, Log.INFO, Log.DEBUG, Log.VERBOSE),
            LogLevel.entries.map { StarlingAndroid.logcatPriority(it) },
        )
    }

    @Test
    fun `the manifest declares the job service behind BIND_JOB_SERVICE`() {
        val manifest = File("../starling/src/main/AndroidManifest.xml")
        val document = DocumentBuilderFactory.newInstance().apply { isNamespaceAware = true }
            .newDocumentBuilder().parse(manifest)
        val androidNs = "http://schemas.android.com/apk/res/android"
        val services = document.getElementsByTagName("service")
        val service = (0 until services.length).map { services.item(it) as Element }
            .single { it.getAttributeNS(androidNs, "name") == StarlingSyncJobService::class.java.name }
        assertEquals("android.permission.BIND_JOB_SERVICE", service.getAttributeNS(androidNs, "permission"))

        val permissions = document.getElementsByTagName("uses-permission")
        val declared = (0 until permissions.length)
            .map { (permissions.item(it) as Element).getAttributeNS(androidNs, "name") }
        val needed = listOf("android.permission.INTERNET", "android.permission.ACCESS_NETWORK_STATE")
        assertTrue(declared.containsAll(needed), declared.toString())
    }
}
