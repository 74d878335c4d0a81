package dev.starling.android

import android.content.Context
import android.net.ConnectivityManager
import android.net.NetworkCapabilities
import android.os.BatteryManager

/**
 * A snapshot of what the device can spare for an upload right now.
 *
 * Read it with [read]. Starling checks [isOnline] before the sync it starts when the app comes to
 * the foreground; apps can use it to decide when to call [dev.starling.Starling.sync] themselves.
 */
public data class DeviceConditions(
    /** A network with working internet access is up (the system has validated it). */
    val isOnline: Boolean,
    /** That network is not metered (typically Wi-Fi), so uploads cost the user nothing. */
    val isUnmetered: Boolean,
    /** The device is charging. */
    val isCharging: Boolean,
) {
    /** Reading the conditions from the system. */
    public companion object {
        /**
         * Reads the current conditions from `ConnectivityManager` and `BatteryManager`.
         *
         * Needs `ACCESS_NETWORK_STATE`, which the library's manifest declares. If the app removed
         * it, the network counts as online and metered: a sync attempt then costs one failed
         * request at worst, whereas never syncing would lose data.
         */
        @JvmStatic
        public fun read(context: Context): DeviceConditions {
            val (online, unmetered) = try {
                val connectivity = context.getSystemService(ConnectivityManager::class.java)
                network(connectivity?.getNetworkCapabilities(connectivity.activeNetwork))
            } catch (_: SecurityException) {
                true to false
            }
            val charging = context.getSystemService(BatteryManager::class.java)?.isCharging ?: false
            return DeviceConditions(isOnline = online, isUnmetered = unmetered, isCharging = charging)
        }

        /**
         * Online and unmetered from the active network's capabilities (`null` when there is no
         * active network). Validation is required for "online" because a network that has not
         * reached the internet (a captive portal, a dead Wi-Fi) would only make the upload fail.
         */
        internal fun network(capabilities: NetworkCapabilities?): Pair<Boolean, Boolean> {
            if (capabilities == null) return false to false
            val online = capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET) &&
                capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_VALIDATED)
            val unmetered = online && capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED)
            return online to unmetered
        }
    }
}
