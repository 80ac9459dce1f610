import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Runs one OpenSearch node in this JVM with real Netty HTTP on 127.0.0.1, for
 * integration tests only (no security). By default a single node whose data is wiped at
 * start; with OS_SEED_HOSTS one member of a multi-node cluster on loopback.
 *
 * Environment:
 *   OS_HTTP_PORT  HTTP port (required; a single port, so a clash fails fast)
 *   OS_HOME       node home; config/, logs/, data/ and empty modules/, plugins/
 *                 are created under it, data/ is wiped first (unless OS_KEEP_DATA=1)
 *   OS_TRANSPORT_PORT  transport port or range (default 9300-9400)
 *   OS_PID_FILE   if set, this JVM's PID is written there once the node is up
 *   OS_NODE_NAME, OS_CLUSTER_NAME  default test-node, test-services
 *   OS_SEED_HOSTS  cluster mode: the members' transport addresses (host:port,...);
 *                 discovery is then zen with OS_INITIAL_CLUSTER_MANAGER_NODES (node
 *                 names) bootstrapping a fresh cluster, and replicas keep OpenSearch's
 *                 default of 1
 *   OS_KEEP_DATA  1: keep data/ (a cluster member restarting after a kill)
 *
 * Prints "OPENSEARCH_READY http://127.0.0.1:PORT" on stdout once started and
 * runs until SIGTERM/SIGINT, when it closes the node.
 */
public final class Launcher {

    /** Node's plugin-taking constructor is protected, hence this subclass. */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }

        /** Only one node per JVM here; skip the process-global listener, as the test framework does. */
        @Override
        protected void configureNodeAndClusterIdStateListener(ClusterService clusterService) {}
    }

    public static void main(String[] args) throws Exception {
        String port = LauncherSupport.requireEnv("OS_HTTP_PORT");
        Path home = Paths.get(System.getenv().getOrDefault("OS_HOME", "target/os-home")).toAbsolutePath();
        Path data = home.resolve("data");
        LauncherSupport.prepareHome(home, "1".equals(System.getenv("OS_KEEP_DATA")));
        String nodeName = System.getenv().getOrDefault("OS_NODE_NAME", "test-node");
        String seedHosts = System.getenv().getOrDefault("OS_SEED_HOSTS", "");
        boolean cluster = !seedHosts.isBlank();

        Settings.Builder builder = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", data.toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", System.getenv().getOrDefault("OS_CLUSTER_NAME", "test-services"))
            .put("node.name", nodeName)
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", System.getenv().getOrDefault("OS_TRANSPORT_PORT", "9300-9400"))
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            // a nearly full disk would otherwise make indices read-only (429 on _bulk)
            .put("cluster.routing.allocation.disk.threshold_enabled", false);
        if (cluster) {
            builder.putList("discovery.seed_hosts", List.of(seedHosts.split(",")))
                .putList("cluster.initial_cluster_manager_nodes",
                    List.of(System.getenv().getOrDefault("OS_INITIAL_CLUSTER_MANAGER_NODES", nodeName).split(",")))
                // a killed member is noticed within ~3 s instead of ~30 s
                .put("cluster.fault_detection.follower_check.interval", "1s")
                .put("cluster.fault_detection.follower_check.timeout", "2s")
                .put("cluster.fault_detection.follower_check.retry_count", "2");
        } else {
            builder.put("discovery.type", "single-node");
        }
        Settings settings = builder.build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Map.of(), home.resolve("config"), () -> nodeName);

        List<Class<? extends Plugin>> plugins = List.of(
            Netty4Plugin.class,
            CommonAnalysisPlugin.class,
            PainlessPlugin.class,
            MapperExtrasPlugin.class,
            ReindexPlugin.class);

        long t0 = System.nanoTime();
        Node node = new EmbeddedNode(env, plugins).start();
        if (!cluster) {
            // One node cannot host replicas: make new indices default to 0 so health is green.
            // This is a cluster setting (only honoured from cluster state, not from node
            // settings), so no catch-all index template can interfere with the tests' own templates.
            node.client().admin().cluster().prepareUpdateSettings()
                .setPersistentSettings(Settings.builder().put("cluster.default_number_of_replicas", 0))
                .get();
        }
        LauncherSupport.runUntilSignalled("OPENSEARCH_READY", port, t0, "OS_PID_FILE", () -> {
            node.close();
            node.awaitClose(20, TimeUnit.SECONDS);
        });
    }
}
