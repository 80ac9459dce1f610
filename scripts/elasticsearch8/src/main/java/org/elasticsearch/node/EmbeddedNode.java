package org.elasticsearch.node;

import java.util.Collection;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.MockPluginsService;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsService;

/**
 * An Elasticsearch 8 node whose plugins come from the classpath.
 *
 * In 8.x the only public Node constructor loads plugins from the modules/ and plugins/
 * directories of a distribution; the constructor taking a NodeConstruction and the
 * NodeServiceProvider that builds the PluginsService are package-private, hence this class in
 * org.elasticsearch.node (a split package is allowed on a plain classpath). The
 * PluginsService is the test framework's MockPluginsService, which instantiates the given
 * plugin classes as Elasticsearch's own integration tests do.
 */
public final class EmbeddedNode extends Node {
    public EmbeddedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
        super(NodeConstruction.prepareConstruction(env, new NodeServiceProvider() {
            @Override
            PluginsService newPluginService(Environment environment, Settings settings) {
                return new MockPluginsService(settings, environment, plugins);
            }
        }, true));
    }
}
