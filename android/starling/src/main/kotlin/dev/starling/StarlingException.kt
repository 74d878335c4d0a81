package dev.starling

import dev.starling.internal.InternalException
import dev.starling.internal.StarlingException as FfiException

/**
 * Everything a call into Starling can fail with.
 *
 * There is one subclass per kind of failure, so apps can branch with `when` and never need to
 * import the generated `dev.starling.internal` package. [message] is [reason]: a sentence meant for
 * the developer reading a log, not for end users.
 *
 * It is unchecked, like the rest of Kotlin's exceptions, so that Java callers are not forced to
 * wrap every [Starling.track] in a `try`; the methods still declare it with `@Throws`.
 */
public sealed class StarlingException(
    /** Why the call failed, in words; also the exception's [message]. */
    public val reason: String,
    cause: Throwable? = null,
) : RuntimeException(reason, cause) {

    /**
     * The event broke a validation rule (a bad name, too many properties, a value that is not a
     * finite number, a time before 2000 or in the future) and was not recorded. [reason] names
     * the rule and the offending key.
     */
    public class InvalidEvent(reason: String) : StarlingException(reason)

    /**
     * Consent has not been granted, so nothing was recorded or sent. Expected whenever the user
     * has not opted in; see [Starling.consent].
     */
    public class NoConsent(reason: String) : StarlingException(reason)

    /**
     * Events arrive faster than the device can store them and the in-memory queue is full; this
     * event was not recorded.
     */
    public class QueueFull(reason: String) : StarlingException(reason)

    /** The [StarlingConfig] is not usable; [reason] names the setting. Thrown by [Starling.open]. */
    public class InvalidConfig(reason: String) : StarlingException(reason)

    /**
     * The on-device store failed, for example because the disk is full. Events not yet flushed
     * stay in memory and are retried.
     */
    public class Storage(reason: String) : StarlingException(reason)

    /** [Starling.sync] was called, but [StarlingConfig.serverUrl] is not set. */
    public class NoServer(reason: String) : StarlingException(reason)

    /** The instance was closed with [Starling.close]; open a new one to continue. */
    public class Closed(reason: String = CLOSED_REASON) : StarlingException(reason)

    /**
     * No signal, bandit or decision goes by the name or id passed: a typo, a definition missing
     * from [StarlingConfig.signals] or [StarlingConfig.bandits], or a decision id this SDK did not
     * make. [reason] quotes the name.
     */
    public class NotFound(reason: String) : StarlingException(reason)

    /**
     * A bandit refused its input: a context of the wrong length or with a number that is not
     * finite, or a reward outside the range its policy learns from; a learning example or task
     * that does not fit its model; or a private release's parameters. [reason] says which.
     */
    public class InvalidArgument(reason: String) : StarlingException(reason)

    /** A bug inside Starling, caught before it could crash the app. Please report it. */
    public class Internal(reason: String, cause: Throwable? = null) : StarlingException(reason, cause)

    internal companion object {
        /** The core's own wording, so a closed instance reads the same from Kotlin and Rust. */
        const val CLOSED_REASON: String = "this Starling instance is closed"
    }
}

/**
 * Runs one call into the generated bindings and turns whatever they throw into the public
 * [StarlingException]. Every call into `dev.starling.internal` goes through here, so no generated
 * type ever reaches the app.
 *
 * [closed] tells a use-after-close apart from a genuine bug: the generated object throws
 * [IllegalStateException] once its native handle has been freed.
 */
internal inline fun <T> ffiCall(closed: () -> Boolean = { false }, block: () -> T): T =
    try {
        block()
    } catch (e: FfiException) {
        throw e.toPublic()
    } catch (e: InternalException) {
        throw StarlingException.Internal("internal error in the bindings: ${e.message}", e)
    } catch (e: IllegalStateException) {
        if (closed()) throw StarlingException.Closed() else throw e
    }

/** One generated variant to one public subclass, keeping the core's reason as the message. */
internal fun FfiException.toPublic(): StarlingException = when (this) {
    is FfiException.InvalidEvent -> StarlingException.InvalidEvent(reason)
    is FfiException.NoConsent -> StarlingException.NoConsent(reason)
    is FfiException.QueueFull -> StarlingException.QueueFull(reason)
    is FfiException.InvalidConfig -> StarlingException.InvalidConfig(reason)
    is FfiException.Storage -> StarlingException.Storage(reason)
    is FfiException.NoServer -> StarlingException.NoServer(reason)
    is FfiException.Closed -> StarlingException.Closed(reason)
    is FfiException.NotFound -> StarlingException.NotFound(reason)
    is FfiException.InvalidArgument -> StarlingException.InvalidArgument(reason)
    is FfiException.Internal -> StarlingException.Internal(reason)
}
