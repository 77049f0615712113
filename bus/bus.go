// Package bus is Vigil's durable log on NATS JetStream. It implements
// vigil.Log, vigil.Consumer, vigil.LogReader, and for several nodes
// (decision 33) vigil.PartitionedLog, vigil.SharedConsumer and, on a
// key-value bucket, vigil.Leases.
//
// In embedded mode (Options.URL == "") a NATS server runs inside the process
// with JetStream storing in Options.Dir; it listens on no port and the client
// connects in-process. Every write is fsynced before it is acknowledged
// (server option SyncAlways). In external mode the log connects to a NATS
// cluster; durability then depends on that cluster's settings (run it with
// sync_interval: always, and use Replicas: 3).
//
// Append group-commits: the batches of concurrent callers are merged into one
// JetStream message, published, and every caller in the group returns once
// JetStream has acknowledged (stored and fsynced) it. Throughput comes from
// merging, not from relaxing fsync.
//
// Partitions. With Options.Partitions above one, Append divides each batch
// by patient (vigil.PartitionOf) and publishes each partition's part on a
// subject of its own, Subject+".batch.p<k>"; with one, batches stay on
// Subject+".batch", as before partitions existed. The count is kept in the
// stream's metadata and fixed for the stream's life. Consume reads every
// partition; ConsumePartition and ReadPartition read one, under durable
// consumers named "<name>-p<k>" that take that partition's subject only.
//
// Consumers. Consume and ConsumePartition are ordered: one process per
// durable name, acknowledgement policy "all", rewound to the ack floor on
// failure or on a lost delivery. ConsumeShared is a work queue: any number
// of processes on any node share one durable consumer with explicit
// acknowledgements, each delivery going to one of them. Lag, AckFloor,
// LastSeq and Drained tell how far consumers are.
//
// Leases. Log.Leases returns time-limited leases (who runs which
// partition's rules engine, which nodes are alive) kept in the JetStream
// key-value bucket LeaseBucket(Stream), replicated like the stream.
package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// Defaults for zero Options fields.
const (
	DefaultStream        = "VIGIL"
	DefaultSubject       = "vigil.log"
	DefaultMaxAge        = 7 * 24 * time.Hour
	DefaultMaxBatchBytes = 1 << 20
	DefaultMaxInFlight   = 1
	DefaultAckTimeout    = 10 * time.Second
	DefaultFetchSize     = 256
	DefaultFetchWait     = 2 * time.Second
	DefaultAckWait       = 5 * time.Minute
	DefaultRetryMin      = 100 * time.Millisecond
	DefaultRetryMax      = 30 * time.Second

	// MaxReplicas is the most replicas JetStream gives a stream.
	MaxReplicas = 5
	// MaxPartitions is the most partitions a log may have.
	MaxPartitions = 1024
	// DefaultSharedAckWait is the default Options.SharedAckWait.
	DefaultSharedAckWait = 30 * time.Second

	// embeddedMaxPayload is the embedded server's largest message.
	embeddedMaxPayload = 8 << 20
	// headerSlack is reserved in each message for the subject and headers.
	headerSlack = 4 << 10
)

// Options configure a Log. The zero value of every field but Dir (embedded
// mode) or URL (external mode) selects a default.
type Options struct {
	// Dir is the data directory of the embedded server; JetStream stores
	// under it. Required when URL is "".
	Dir string
	// URL selects external mode: the NATS server URLs, comma-separated.
	URL string
	// NATSOptions are extra client options for external mode (credentials,
	// TLS...).
	NATSOptions []nats.Option

	// Stream is the JetStream stream name; default DefaultStream.
	Stream string
	// Subject is the subject prefix: the stream holds Subject+".>"; default
	// DefaultSubject. Two streams in one account need different subjects.
	Subject string
	// Replicas of the streams and durable consumers: how many servers of
	// the cluster hold each write before JetStream acknowledges it (to a
	// quorum of them, as a PubAck); default 1. Use 3 on a 3-server cluster.
	// It must be 1..MaxReplicas, and not above the number of servers URL
	// names (CheckReplicas); the embedded server is one.
	Replicas int
	// MaxAge is how long messages are kept; default DefaultMaxAge.
	MaxAge time.Duration
	// MaxBytes caps the stream size, dropping the oldest messages; 0 means
	// no limit.
	MaxBytes int64

	// MaxBatchBytes caps the encoded size of one log message; default
	// DefaultMaxBatchBytes, and never more than the server's max payload
	// allows. A single reading or quarantine item larger than that is
	// written alone.
	MaxBatchBytes int
	// MaxInFlight is how many log messages may await their acknowledgement
	// at once; default DefaultMaxInFlight. With several partitions it counts
	// rounds: each publishes at once one message for every partition with
	// records waiting. One is fastest when the CPU, not fsync, is the limit
	// (as measured on a 2-core machine): waiting longer makes larger groups
	// and fewer messages (see BenchmarkAppend).
	MaxInFlight int
	// AckTimeout is how long to wait for JetStream to acknowledge a message;
	// default DefaultAckTimeout.
	AckTimeout time.Duration

	// FetchSize is the most deliveries passed to one call of a Consume
	// function; default DefaultFetchSize. Each call is one transaction of
	// the store writer and one save of the rules engine, each with its
	// fsync, so a consumer that fell behind catches up in larger ones: 256
	// keeps one-reading MQTT messages from costing a commit per 32 readings.
	FetchSize int
	// FetchWait is how long one idle fetch waits for messages; default
	// DefaultFetchWait. It bounds nothing the caller sees.
	FetchWait time.Duration
	// AckWait is how long JetStream waits for a consumer's acknowledgement
	// before it considers a delivery lost; default DefaultAckWait. Consume
	// does not rely on it for redelivery (see Consume).
	AckWait time.Duration
	// RetryMin and RetryMax bound the exponential back-off after a Consume
	// function fails; defaults DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration

	// Partitions is how many partitions the log divides patients into
	// (vigil.PartitionOf), 1..MaxPartitions; 0 means 1. With one, batches
	// are published on Subject+".batch", as before partitions existed; with
	// more, each batch is split by patient and partition k's part is
	// published on Subject+".batch.p<k>". The count is recorded in the
	// stream's metadata when the stream is created and fixed from then on:
	// Open refuses another (EINVALID).
	Partitions int
	// SharedAckWait is how long JetStream waits for the acknowledgement of
	// a ConsumeShared delivery before it delivers it again, possibly to
	// another process; default DefaultSharedAckWait. ConsumeShared tells
	// JetStream that work is in progress every third of it while its
	// function runs, so only a process that died or lost its connection
	// lets it pass.
	SharedAckWait time.Duration
	// SetupTimeout bounds how long Open, on an external NATS, keeps
	// trying to set the stream up while JetStream does not answer (a
	// server of the cluster just died and the stream's leader is being
	// elected, or the cluster is still starting): it tries again with
	// back-off, logging each failure, for at most this long from its
	// first failure; default DefaultSetupTimeout; negative: one try. A
	// refusal (EINVALID: the partition count) is not tried again.
	SetupTimeout time.Duration

	// Logger receives operational messages, including the embedded
	// server's warnings and errors; default slog.Default().
	Logger *slog.Logger
}

// ServerURLs returns the server URLs of url, a comma-separated list as
// nats.Connect takes it, without empty items.
func ServerURLs(url string) []string {
	var urls []string
	for _, u := range strings.Split(url, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// CheckReplicas returns an EINVALID error unless replicas is a replica
// count the servers of url can hold: 1..MaxReplicas, and not more than the
// servers url lists (one, the embedded server, when url is ""). Every server
// of the cluster must be listed, so that the node reaches the cluster
// through any of them.
func CheckReplicas(url string, replicas int) error {
	if replicas < 1 || replicas > MaxReplicas {
		return vigil.Errorf(vigil.EINVALID, "log replicas must be 1 to %d, not %d", MaxReplicas, replicas)
	}
	n := len(ServerURLs(url))
	if url == "" {
		if replicas > 1 {
			return vigil.Errorf(vigil.EINVALID, "log replicas %d need an external NATS cluster: the embedded log is one server", replicas)
		}
		return nil
	}
	if n == 0 {
		return vigil.Errorf(vigil.EINVALID, "NATS URL %q names no server", url)
	}
	if replicas > n {
		return vigil.Errorf(vigil.EINVALID, "log replicas %d exceed the %d NATS server(s) listed: list every server of the cluster, comma-separated", replicas, n)
	}
	return nil
}

func (o *Options) setDefaults() {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Subject == "" {
		o.Subject = DefaultSubject
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.FetchSize <= 0 {
		o.FetchSize = DefaultFetchSize
	}
	if o.FetchWait <= 0 {
		o.FetchWait = DefaultFetchWait
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(DefaultRetryMax, o.RetryMin)
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	if o.SharedAckWait <= 0 {
		o.SharedAckWait = DefaultSharedAckWait
	}
	if o.SetupTimeout == 0 {
		o.SetupTimeout = DefaultSetupTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Log is the durable log. It is safe for concurrent use. Close it to stop
// the embedded server.
type Log struct {
	opts    Options
	log     *slog.Logger
	srv     *server.Server // nil in external mode
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string   // Subject+".batch": the subject of the one partition, and the base of the others'
	parts   []string // the subject each partition's parts are published on, by partition
	maxMsg  int      // most record bytes per message

	mu     sync.Mutex
	closed bool
	queue  []chunk // chunks waiting to be published, in arrival order
	wake   chan struct{}
	slots  chan struct{} // one token per message awaiting its ack
	acks   chan inflight // published messages, in publish order
	done   chan struct{} // closed when every queued chunk is completed

	stop      context.Context // cancelled by Close; stops consumers
	stopAll   context.CancelFunc
	consumers map[string]bool // names with an active Consume; guarded by mu
	shared    map[string]int  // names with active ConsumeShared loops, and how many; guarded by mu
	consWG    sync.WaitGroup
	canReset  bool // the server has the consumer reset API (2.14+)

	bufs sync.Pool // of *[]byte message buffers
}

var (
	_ vigil.Log            = (*Log)(nil)
	_ vigil.Consumer       = (*Log)(nil)
	_ vigil.LogReader      = (*Log)(nil)
	_ vigil.PartitionedLog = (*Log)(nil)
	_ vigil.SharedConsumer = (*Log)(nil)
)

// Open starts the embedded server or connects to the external one, and
// creates the stream or updates its configuration (the replicas among it:
// JetStream moves an existing stream to the new count). On an external
// NATS a stream that cannot be set up yet is tried again for up to
// Options.SetupTimeout.
// It returns EINVALID if Replicas (0 meaning 1) does not suit URL
// (CheckReplicas), if Partitions is above MaxPartitions, or if the stream
// exists with another partition count than Partitions (0 meaning 1).
func Open(ctx context.Context, opts Options) (*Log, error) {
	if err := CheckReplicas(opts.URL, cmp.Or(opts.Replicas, 1)); err != nil {
		return nil, err
	}
	if opts.Partitions < 0 || opts.Partitions > MaxPartitions {
		return nil, vigil.Errorf(vigil.EINVALID, "log partitions must be 1 to %d, not %d", MaxPartitions, opts.Partitions)
	}
	opts.setDefaults()
	l := newLog(opts)
	if err := l.connect(); err != nil {
		return nil, err
	}
	if err := l.setupRetrying(ctx); err != nil {
		l.shutdown()
		return nil, err
	}
	l.start()
	return l, nil
}

// Back-off of Open's tries to set the stream up on an external NATS.
const (
	DefaultSetupTimeout = 60 * time.Second
	setupRetryMin       = 250 * time.Millisecond
	setupRetryMax       = 5 * time.Second
)

// setupRetrying sets the stream up; see retrySetup.
func (l *Log) setupRetrying(ctx context.Context) error {
	return l.retrySetup(ctx, "durable log", func() error { return l.setup(ctx) })
}

// retrySetup calls setup, which sets up what (a stream, a bucket) on the
// server; on an external NATS it calls it again, with back-off, while the
// failure is not a refusal (EINVALID), SetupTimeout has not passed since
// the first failure, ctx has not ended and the log is not closed, logging
// each failure.
func (l *Log) retrySetup(ctx context.Context, what string, setup func() error) error {
	err := setup()
	if err == nil || l.opts.URL == "" || l.opts.SetupTimeout < 0 {
		return err
	}
	deadline := time.Now().Add(l.opts.SetupTimeout)
	pause := setupRetryMin
	for try := 2; ; try++ {
		var claimed *StoreClaimed
		if vigil.ErrorCode(err) == vigil.EINVALID || errors.As(err, &claimed) || ctx.Err() != nil || l.checkOpen() != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("set the %s up: gave up after %s: %w", what, l.opts.SetupTimeout, err)
		}
		l.log.Warn(what+" not set up yet (NATS JetStream not answering); trying again",
			"stream", l.opts.Stream, "err", err, "after", pause, "gives_up_in", left.Round(time.Second))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(min(pause, left)):
		}
		pause = min(2*pause, setupRetryMax)
		if err = setup(); err == nil {
			l.log.Info(what+" set up", "stream", l.opts.Stream, "tries", try)
			return nil
		}
	}
}

// newLog returns a Log of opts (with defaults set), not yet connected.
func newLog(opts Options) *Log {
	l := &Log{
		opts:      opts,
		log:       opts.Logger,
		subject:   opts.Subject + ".batch",
		wake:      make(chan struct{}, 1),
		slots:     make(chan struct{}, opts.MaxInFlight),
		acks:      make(chan inflight, opts.MaxInFlight),
		done:      make(chan struct{}),
		consumers: make(map[string]bool),
		shared:    make(map[string]int),
	}
	l.parts = make([]string, opts.Partitions)
	for k := range l.parts {
		l.parts[k] = l.partSubject(k)
	}
	return l
}

// start starts the committer of a connected and set up Log.
func (l *Log) start() {
	l.stop, l.stopAll = context.WithCancel(context.Background())
	go l.commit()
	go l.awaitAcks()
}

func (l *Log) connect() error {
	if l.opts.URL != "" {
		opts := append([]nats.Option{nats.Name("vigil-bus"), nats.MaxReconnects(-1)}, l.opts.NATSOptions...)
		nc, err := nats.Connect(l.opts.URL, opts...)
		if err != nil {
			return unavailable("connect to NATS", err)
		}
		l.nc = nc
		return nil
	}
	if l.opts.Dir == "" {
		return vigil.Errorf(vigil.EINVALID, "bus: Options.Dir is required in embedded mode")
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "vigil",
		DontListen: true,
		JetStream:  true,
		StoreDir:   l.opts.Dir,
		SyncAlways: true, // fsync every write before it is acknowledged
		MaxPayload: embeddedMaxPayload,
		NoSigs:     true,
	})
	if err != nil {
		return fmt.Errorf("create embedded NATS server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{l.log}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return unavailable("start embedded NATS server", errors.New("not ready within 30s"))
	}
	l.srv = srv
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("vigil-bus"))
	if err != nil {
		l.shutdown()
		return unavailable("connect to embedded NATS server", err)
	}
	l.nc = nc
	return nil
}

func (l *Log) setup(ctx context.Context) error {
	js, err := jetstream.New(l.nc, jetstream.WithPublishAsyncTimeout(l.opts.AckTimeout))
	if err != nil {
		return fmt.Errorf("create JetStream context: %w", err)
	}
	l.js = js
	maxBytes := l.opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	cfg := jetstream.StreamConfig{
		Name:      l.opts.Stream,
		Subjects:  []string{l.opts.Subject + ".>"},
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		Storage:   jetstream.FileStorage,
		Replicas:  l.opts.Replicas,
		MaxAge:    l.opts.MaxAge,
		MaxBytes:  maxBytes,
		MaxMsgs:   -1,
	}
	if err := l.createOrUpdateStream(ctx, cfg); err != nil {
		return err
	}
	payload := int(l.nc.MaxPayload())
	if payload <= headerSlack+1 {
		return fmt.Errorf("open log: server max payload %d is too small", payload)
	}
	l.maxMsg = min(l.opts.MaxBatchBytes, payload-headerSlack-1)
	l.canReset = versionAtLeast(l.nc.ConnectedServerVersion(), 2, 14)
	if !l.canReset {
		l.log.Info("NATS server lacks the consumer reset API; consumers rewind by re-creation", "server", l.nc.ConnectedServerVersion())
	}
	return nil
}

// Close stops accepting appends, waits until every batch already accepted is
// acknowledged (or failed), stops running consumers, and shuts the embedded
// server down. If ctx ends first, the remaining appends fail and the server
// is shut down anyway. Close is idempotent.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.signal()

	var err error
	select {
	case <-l.done:
	case <-ctx.Done():
		err = fmt.Errorf("close log: drain appends: %w", ctx.Err())
	}
	l.stopAll()
	consumersDone := make(chan struct{})
	go func() { l.consWG.Wait(); close(consumersDone) }()
	select {
	case <-consumersDone:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("close log: stop consumers: %w", ctx.Err())
		}
	}
	l.shutdown()
	<-l.done // the closed connection fails whatever was still pending
	return err
}

// shutdown closes the connection and stops the embedded server.
func (l *Log) shutdown() {
	if l.nc != nil {
		l.nc.Close()
		if l.js != nil {
			l.js.CleanupPublisher()
		}
	}
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
	}
}

// Ping reports whether the log can take appends: it is open, connected, and
// JetStream answers for the stream. For readiness probes.
func (l *Log) Ping(ctx context.Context) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return vigil.Errorf(vigil.EUNAVAILABLE, "durable log is closed")
	}
	if s := l.nc.Status(); s != nats.CONNECTED {
		return unavailable("ping log", fmt.Errorf("NATS connection is %v", s))
	}
	if _, err := l.js.Stream(ctx, l.opts.Stream); err != nil {
		return unavailable("ping log", err)
	}
	return nil
}

// unavailable returns an EUNAVAILABLE error whose cause is err.
func unavailable(doing string, err error) error {
	return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "durable log unavailable", Err: fmt.Errorf("%s: %w", doing, err)}
}

// serverLogger sends the embedded server's log to slog. Notices are debug
// messages: the server is chatty at start-up.
type serverLogger struct{ log *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.emit(slog.LevelDebug, format, v) }
func (s serverLogger) Warnf(format string, v ...any)   { s.emit(slog.LevelWarn, format, v) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.emit(slog.LevelError, format, v) }
func (s serverLogger) Errorf(format string, v ...any)  { s.emit(slog.LevelError, format, v) }
func (s serverLogger) Debugf(format string, v ...any)  { s.emit(slog.LevelDebug, format, v) }
func (s serverLogger) Tracef(format string, v ...any)  { s.emit(slog.LevelDebug, format, v) }

func (s serverLogger) emit(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if s.log.Enabled(ctx, level) {
		s.log.Log(ctx, level, fmt.Sprintf(format, v...), "component", "nats-server")
	}
}
