import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.EmbeddedNode;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.transport.netty4.Netty4Plugin;

/**
 * Runs one Elasticsearch 8.15.5 node in this JVM with real Netty HTTP on 127.0.0.1, for
 * integration tests only (no security: x-pack is not on the classpath; single node, data
 * wiped at start). The shape of ../elasticsearch7's launcher; what 8.x needs on top:
 * Elasticsearch's own logging SPI set up before anything logs, the node built by
 * org.elasticsearch.node.EmbeddedNode, and RootEndpointPlugin for `GET /`.
 *
 * Replicas stay at Elasticsearch's default (1): an index without number_of_replicas is yellow
 * on this single node, as on any real single-node server.
 *
 * Environment:
 *   ES_HTTP_PORT       HTTP port (required; a single port, so a clash fails fast)
 *   ES_HOME            node home; config/, logs/, data/ and empty modules/, plugins/
 *                      are created under it, data/ is wiped first
 *   ES_TRANSPORT_PORT  transport port or range (default 9300-9400)
 *   ES_PID_FILE        if set, this JVM's PID is written there once the node is up
 *
 * Prints "ELASTICSEARCH_READY http://127.0.0.1:PORT" on stdout once started and runs until
 * SIGTERM/SIGINT, when it closes the node.
 */
public final class Launcher {

    public static void main(String[] args) throws Exception {
        // Elasticsearch's logging facade has no provider until this runs (the server's
        // bootstrap does it); plain log4j configuration comes from log4j2.properties.
        LogConfigurator.loadLog4jPlugins();
        LogConfigurator.configureESLogging();
        String port = LauncherSupport.requireEnv("ES_HTTP_PORT");
        Path home = Paths.get(System.getenv().getOrDefault("ES_HOME", "target/es-home")).toAbsolutePath();
        Path data = home.resolve("data");
        LauncherSupport.prepareHome(home, false);

        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", data.toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "test-services-es8")
            .put("node.name", "test-node-es8")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", System.getenv().getOrDefault("ES_TRANSPORT_PORT", "9300-9400"))
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            // a nearly full disk would otherwise make indices read-only (429 on _bulk)
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Map.of(), home.resolve("config"), () -> "test-node-es8");

        List<Class<? extends Plugin>> plugins = List.of(Netty4Plugin.class, RootEndpointPlugin.class);

        long t0 = System.nanoTime();
        Node node = new EmbeddedNode(env, plugins).start();
        LauncherSupport.runUntilSignalled("ELASTICSEARCH_READY", port, t0, "ES_PID_FILE", () -> {
            node.close();
            node.awaitClose(20, TimeUnit.SECONDS);
        });
    }
}
