package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// The audit log's signed checkpoints (package audit) are also kept in a
// stream of their own, so that they live outside the audit database and
// its checkpoint file. Only the last one is read back; the stream keeps
// the last checkpointKeep.
const (
	CheckpointStream  = "VIGIL_AUDIT_CHECKPOINTS"
	checkpointSubject = "vigil-audit.checkpoint"
	checkpointKeep    = 10_000
)

// checkpoints returns the checkpoint stream, creating it if need be.
func (l *Log) checkpoints(ctx context.Context) (jetstream.Stream, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	st, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      CheckpointStream,
		Subjects:  []string{checkpointSubject},
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
	if _, err := l.checkpoints(ctx); err != nil {
		return err
	}
	if _, err := l.js.Publish(ctx, checkpointSubject, b, jetstream.WithExpectStream(CheckpointStream)); err != nil {
		return unavailable("store audit checkpoint", err)
	}
	return nil
}

// LastCheckpoint returns the last checkpoint PutCheckpoint stored; nil if
// there is none.
func (l *Log) LastCheckpoint(ctx context.Context) ([]byte, error) {
	st, err := l.checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	m, err := st.GetLastMsgForSubject(ctx, checkpointSubject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoint: %w", err)
	}
	return m.Data, nil
}
