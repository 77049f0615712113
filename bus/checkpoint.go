package bus

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// The audit log's signed checkpoints (package audit) are also kept in a
// stream of their own, so that they live outside the audit database and
// its checkpoint file. Each node's chain has a subject of its own
// (checkpointSubject.<node>; the node "" of a single node's store keeps
// checkpointSubject), so that nodes sharing the stream do not hide each
// other's. Only the last one of a subject is read back; the stream keeps
// the last checkpointKeep.
const (
	CheckpointStream  = "VIGIL_AUDIT_CHECKPOINTS"
	checkpointSubject = "vigil-audit.checkpoint"
	checkpointKeep    = 10_000
)

// nodeCheckpointSubject returns the subject of node's checkpoints.
func nodeCheckpointSubject(node string) string {
	if node == "" {
		return checkpointSubject
	}
	return checkpointSubject + "." + node
}

// checkpoints returns the checkpoint stream, creating it if need be.
func (l *Log) checkpoints(ctx context.Context) (jetstream.Stream, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	st, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      CheckpointStream,
		Subjects:  []string{checkpointSubject, checkpointSubject + ".*"},
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		Storage:   jetstream.FileStorage,
		Replicas:  l.opts.Replicas,
		MaxMsgs:   checkpointKeep,
	})
	if err != nil {
		return nil, unavailable("create or update stream "+CheckpointStream, err)
	}
	return st, nil
}

// PutCheckpoint appends b, one signed audit checkpoint, to the checkpoint
// stream and returns once JetStream has stored it (fsynced in embedded
// mode). EUNAVAILABLE if the log cannot take it.
func (l *Log) PutCheckpoint(ctx context.Context, b []byte) error {
	return l.PutNodeCheckpoint(ctx, "", b)
}

// PutNodeCheckpoint is PutCheckpoint for a checkpoint of node's chain
// (a node ID: letters, digits, '_' and '-'), on that node's subject.
func (l *Log) PutNodeCheckpoint(ctx context.Context, node string, b []byte) error {
	if _, err := l.checkpoints(ctx); err != nil {
		return err
	}
	if _, err := l.js.Publish(ctx, nodeCheckpointSubject(node), b, jetstream.WithExpectStream(CheckpointStream)); err != nil {
		return unavailable("store audit checkpoint", err)
	}
	return nil
}

// LastCheckpoint returns the last checkpoint PutCheckpoint stored; nil if
// there is none.
func (l *Log) LastCheckpoint(ctx context.Context) ([]byte, error) {
	return l.LastNodeCheckpoint(ctx, "")
}

// LastNodeCheckpoint returns the last checkpoint PutNodeCheckpoint stored
// for node; nil if there is none. A node reads it at start: on an external
// NATS it is tried again like the log's setup (Options.SetupTimeout) while
// the checkpoint stream does not answer.
func (l *Log) LastNodeCheckpoint(ctx context.Context, node string) ([]byte, error) {
	var data []byte
	err := l.retrySetup(ctx, "audit checkpoint stream", func() error {
		st, err := l.checkpoints(ctx)
		if err != nil {
			return err
		}
		m, err := st.GetLastMsgForSubject(ctx, nodeCheckpointSubject(node))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			data = nil
			return nil
		}
		if err != nil {
			return unavailable("read audit checkpoint", err)
		}
		data = m.Data
		return nil
	})
	return data, err
}
