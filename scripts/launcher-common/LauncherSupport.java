import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * What the test-services launchers (../opensearch, ../elasticsearch7, ../elasticsearch8) share:
 * the node's home directory and the process life cycle around the node. Compiled into each
 * launcher (build-helper-maven-plugin adds this directory to its sources).
 */
final class LauncherSupport {
    private LauncherSupport() {}

    /** Closes the node (and waits for it); run once, from the shutdown hook. */
    interface Closer {
        void close() throws Exception;
    }

    /** The environment variable `name`, which must be set. */
    static String requireEnv(String name) {
        String v = System.getenv(name);
        if (v == null || v.isBlank()) {
            throw new IllegalArgumentException(name + " is not set");
        }
        return v;
    }

    /**
     * Creates the node's home: config/, logs/, data/ and the empty modules/ and plugins/ (plugins
     * come from the classpath). data/ is wiped first unless `keepData`.
     */
    static void prepareHome(Path home, boolean keepData) throws IOException {
        if (!keepData) {
            deleteRecursively(home.resolve("data"));
        }
        for (String dir : List.of("config", "modules", "plugins", "logs", "data")) {
            Files.createDirectories(home.resolve(dir));
        }
    }

    /**
     * Once the node started: closes it on SIGTERM/SIGINT (a shutdown hook), writes this JVM's
     * PID to the file named by the environment variable `pidFileEnv` (if set), prints
     * `MARKER http://127.0.0.1:PORT (node started in N s)` on stdout, and waits until the hook
     * has closed the node.
     */
    static void runUntilSignalled(String marker, String port, long startNanos, String pidFileEnv, Closer closer)
        throws Exception {
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                closer.close();
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "node-shutdown"));
        String pidFile = System.getenv(pidFileEnv);
        if (pidFile != null && !pidFile.isBlank()) {
            Files.writeString(Paths.get(pidFile), ProcessHandle.current().pid() + "\n");
        }
        System.out.printf("%s http://127.0.0.1:%s (node started in %.1f s)%n",
            marker, port, (System.nanoTime() - startNanos) / 1e9);
        System.out.flush();
        stopped.await();
    }

    static void deleteRecursively(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                Files.delete(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }
}
