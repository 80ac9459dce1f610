import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.reindex.ReindexPlugin;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.transport.Netty4Plugin;

/**
 * Runs one Elasticsearch 7.10.2 node in this JVM with real Netty HTTP on 127.0.0.1, for
 * integration tests only (no security, single node, data wiped at start). The same shape as
 * ../opensearch/src/main/java/Launcher.java, with the org.elasticsearch packages.
 *
 * Unlike the OpenSearch launcher it leaves replicas at Elasticsearch's default (1): there is
 * no cluster-wide default-replicas setting in Elasticsearch, so an index without
 * number_of_replicas is yellow on this single node, as on any real single-node server.
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

    /** Node's plugin-taking constructor is protected, hence this subclass. */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        String port = LauncherSupport.requireEnv("ES_HTTP_PORT");
        Path home = Paths.get(System.getenv().getOrDefault("ES_HOME", "target/es-home")).toAbsolutePath();
        Path data = home.resolve("data");
        LauncherSupport.prepareHome(home, false);

        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", data.toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "test-services-es7")
            .put("node.name", "test-node-es7")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", System.getenv().getOrDefault("ES_TRANSPORT_PORT", "9300-9400"))
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            // a nearly full disk would otherwise make indices read-only (429 on _bulk)
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            // x-pack is not on the classpath; no ML/monitoring settings are read
            .build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Map.of(), home.resolve("config"), () -> "test-node-es7");

        List<Class<? extends Plugin>> plugins = List.of(Netty4Plugin.class, ReindexPlugin.class);

        long t0 = System.nanoTime();
        Node node = new EmbeddedNode(env, plugins).start();
        LauncherSupport.runUntilSignalled("ELASTICSEARCH_READY", port, t0, "ES_PID_FILE", () -> {
            node.close();
            node.awaitClose(20, TimeUnit.SECONDS);
        });
    }
}
